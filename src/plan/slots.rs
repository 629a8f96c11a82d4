//! Buffer slots: which tensors can share one buffer.

use super::{Op, TensorInfo};

/// Greedy buffer reuse: a tensor not kept gets its slot back after its last
/// reader. An op's output never shares a slot with its inputs (a storage
/// buffer cannot be read and written by the same dispatch).
pub(super) fn assign_slots(tensors: &[TensorInfo], ops: &[Op]) -> (Vec<usize>, Vec<usize>) {
    let mut last_use = vec![0usize; tensors.len()];
    for (i, op) in ops.iter().enumerate() {
        for t in op.inputs() {
            last_use[t] = i;
        }
    }
    let mut slot_of = vec![usize::MAX; tensors.len()];
    let mut slot_len: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let take = |len: usize, slot_len: &mut Vec<usize>, free: &mut Vec<usize>| -> usize {
        // The smallest free slot that fits, else grow the largest free one, else a new one.
        let fit = free.iter().enumerate().filter(|(_, s)| slot_len[**s] >= len).min_by_key(|(_, s)| slot_len[**s]).map(|(i, _)| i);
        let pick = fit.or_else(|| free.iter().enumerate().max_by_key(|(_, s)| slot_len[**s]).map(|(i, _)| i));
        match pick {
            Some(i) => {
                let s = free.swap_remove(i);
                slot_len[s] = slot_len[s].max(len);
                s
            }
            None => {
                slot_len.push(len);
                slot_len.len() - 1
            }
        }
    };
    // The input is written before the first op.
    if let Some(first) = ops.first() {
        for t in first.inputs() {
            slot_of[t] = take(tensors[t].shape.len(), &mut slot_len, &mut free);
        }
    }
    for (i, op) in ops.iter().enumerate() {
        for out in op.outputs() {
            slot_of[out] = take(tensors[out].shape.len(), &mut slot_len, &mut free);
        }
        for t in op.inputs() {
            if last_use[t] == i && !tensors[t].keep && !free.contains(&slot_of[t]) {
                free.push(slot_of[t]);
            }
        }
    }
    (slot_of, slot_len)
}
