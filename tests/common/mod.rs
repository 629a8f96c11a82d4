//! Shared helpers for the GPU tests: one device for the whole test binary,
//! seeded random data, and upload / run / read-back shortcuts.
#![allow(dead_code)]

use std::sync::OnceLock;

use resnet::kernels::{storage_buffer, Dispatch, Kernels};
use resnet::Gpu;

pub struct Ctx {
    pub gpu: Gpu,
    pub k: Kernels,
}

pub fn ctx() -> &'static Ctx {
    static CTX: OnceLock<Ctx> = OnceLock::new();
    CTX.get_or_init(|| {
        let gpu = pollster::block_on(Gpu::new()).expect("a GPU adapter (lavapipe: apt install mesa-vulkan-drivers)");
        let k = Kernels::new(&gpu.device, &gpu.queue, resnet::Precision::F32);
        Ctx { gpu, k }
    })
}

pub use resnet::demo::Rng;

impl Ctx {
    pub fn upload(&self, data: &[f32]) -> wgpu::Buffer {
        storage_buffer(&self.gpu.device, "test", data)
    }
    pub fn zeros(&self, n: usize) -> wgpu::Buffer {
        self.upload(&vec![0.0; n])
    }
    pub fn run(&self, dispatches: &[&Dispatch]) {
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in dispatches {
                d.record(&mut pass);
            }
        }
        self.gpu.queue.submit([enc.finish()]);
    }
    pub fn read(&self, buf: &wgpu::Buffer, n: usize) -> Vec<f32> {
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (n * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, 0, &staging, 0, (n * 4) as u64);
        self.gpu.queue.submit([enc.finish()]);
        let bytes = pollster::block_on(resnet::gpu::map_bytes(&self.gpu, &staging, (n * 4) as u64)).expect("readback");
        bytemuck::pod_collect_to_vec(&bytes)
    }
}

/// Asserts `|got - want| <= atol + rtol·max|want|` elementwise.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let tol = atol + rtol * scale;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}: element {i}: got {g}, want {w} (tol {tol})");
    }
}
