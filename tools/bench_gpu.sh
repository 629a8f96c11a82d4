#!/usr/bin/env bash
# GPU benchmark: our `resnet bench` (Vulkan) beside torchvision in PyTorch,
# eager and CUDA graphs, batch 1, fp32, 224×224, in one command on one GPU, so
# the ratios hold. Run on the GPU machine from the repository root with the
# `resnet` binary already built (cargo build --release --bin resnet).
#
#   bash tools/bench_gpu.sh [results-dir]
#
# The machine needs python3 with torch, torchvision, safetensors and numpy.
# A GPU machine may lack the Vulkan loader: the Debian packages in .gl/, if
# any, are unpacked into / first: libvulkan1 and the
# glvnd libraries NVIDIA's Vulkan driver loads through (libglvnd0, libglx0,
# libegl1, libgl1, libgles2, libopengl0; with only the first three its ICD
# failed to create an instance). Fetch them on a machine with apt:
#   mkdir -p .gl && (cd .gl && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench_gpu}
bin=${RESNET_BIN:-target/release/resnet}
iters=${ITERS:-100}
mkdir -p "$out"
# Each run of ours gets a time limit, so one that hangs (a new kernel on a new
# driver) costs STEP_TIMEOUT seconds, not the machine's whole lease.
step() { timeout --kill-after=5 "${STEP_TIMEOUT:-120}" "$@"; }

# The Vulkan loader and glvnd, where the machine lacks them.
if ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
ldconfig -p | grep -q 'libvulkan.so.1 ' || { echo "no libvulkan.so.1: put the libvulkan1 .deb (and glvnd's) in .gl/" >&2; exit 1; }
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
# Find a driver manifest wgpu can use: the loader's default search first,
# then NVIDIA's manifests as they are and with the library's absolute path.
probe() { "$bin" adapter 2>&1 | grep -v -i -E "^error|loader" | head -3; "$bin" adapter >/dev/null 2>&1; }
found=
if probe; then found=default; else
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    tmp=$(mktemp -d)
    for lib in /usr/local/nvidia/lib64/libGLX_nvidia.so.0 /lib/libGLX_nvidia.so.0 /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0; do
        [ -e "$lib" ] && printf '{"file_format_version":"1.0.1","ICD":{"library_path":"%s","api_version":"1.4"}}' "$lib" >"$tmp/$(echo "$lib" | tr / _).json"
    done
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json "$tmp"/*.json; do
        [ -f "$icd" ] || continue
        for ld in "" /usr/local/nvidia/lib64; do
            export VK_DRIVER_FILES=$icd LD_LIBRARY_PATH=$ld
            if probe; then found="$icd ${ld:+(LD_LIBRARY_PATH=$ld)}"; break 2; fi
        done
    done
fi
if [ -z "$found" ]; then
    echo "no Vulkan adapter; diagnostics:" >&2
    cat /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json 2>&1
    ls -la /dev/nvidia* /lib/libGLX_nvidia* /usr/local/nvidia/lib64/ 2>&1 | head -60
    VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json VK_LOADER_DEBUG=all LD_LIBRARY_PATH= "$bin" adapter 2>&1 | grep -v -i "layer" | head -40
    exit 1
fi
echo "Vulkan driver manifest: $found"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv 2>/dev/null

w=${WEIGHTS_DIR:-$(mktemp -d)}
[ -f "$w/resnet50.ref.npy" ] || python3 tools/bench_torch.py weights "$w" || exit 1
cp "$w"/*.ref.npy "$out"/
# VARIANTS: folders of replacement .wgsl files (kernel experiments), timed
# beside the built-in shaders ("-"). PRECISIONS: f32 and/or f16 storage.
# coop (tensor cores, f16 only) runs on its portable twin where the driver
# offers no cooperative matrices; the bench line says which. `+fold` leaves
# a split conv's partial sums for the next conv to finish while loading
# (fewer dispatches, more loads); `+small` runs 32×32 tiles unsplit where
# they give enough workgroups (no reduction at all: 57 dispatches for
# ResNet-50 with +fold); `+foldF` folds only splits of at most F slices
# (each folded load reads all F, so deep splits may be better reduced):
# which wins is what this run decides.
for arch in resnet18 resnet50; do
    for precision in ${PRECISIONS:-f32 f16}; do
        # A failure (the tensor-core kernel on a new driver, say) is reported
        # and the run goes on: the rest and PyTorch still get timed, and the
        # report leaves out what is missing.
        step "$bin" classify --weights "$w/$arch.safetensors" --tensor "$w/input.npy" --json --precision "$precision" \
            >"$out/ours_${arch}_${precision}_logits.json" || { echo "FAILED: classify $arch $precision" >&2; rm -f "$out/ours_${arch}_${precision}_logits.json"; }
        for variant in ${VARIANTS:--}; do
            for conv in ${CONVS:-splitk:256 splitk+fold:256 splitk+fold:256:256 splitk+small:256 splitk+fold+small:256 splitk+fold8+small:256 splitk+fold4+small:256 splitk+fold+small:256:256 gemm direct coop coop+fold}; do
                # coop needs f16; f16 only for the built-in shaders, splitk and coop.
                case "$precision/$conv" in f32/coop*) continue ;; f16/splitk:256|f16/coop*) [ "$variant" = - ] || continue ;; f16/*) continue ;; esac
                tag=${conv//:/_}_$precision; [ "$variant" = - ] || tag="${tag}_$(basename "$variant")"
                RESNET_SHADER_DIR=${variant#-} step "$bin" bench --weights "$w/$arch.safetensors" --iters "$iters" --conv "$conv" \
                    --precision "$precision" --layers 8 --json "$out/ours_${arch}_fast_${tag}.json" >"$out/last_bench.txt" \
                    || { echo "FAILED: bench $arch $conv $precision" >&2; rm -f "$out/ours_${arch}_fast_${tag}.json"; continue; }
                head -6 "$out/last_bench.txt"
            done
        done
    done
    step "$bin" bench --weights "$w/$arch.safetensors" --iters 20 --mode inspect --layers 0 --json "$out/ours_${arch}_inspect.json" >"$out/last_bench.txt" \
        && head -6 "$out/last_bench.txt" || echo "FAILED: bench $arch inspect" >&2
    # The page's configuration: the default kernels plus the per-block
    # statistics every frame (latency includes them; the stage times do not).
    step "$bin" bench --weights "$w/$arch.safetensors" --iters "$iters" --stats --layers 0 --json "$out/ours_${arch}_fast_stats.json" >"$out/last_bench.txt" \
        && head -6 "$out/last_bench.txt" || echo "FAILED: bench $arch --stats" >&2
    # The default submits a command buffer per stage, so the GPU starts while
    # the CPU records the rest; one per frame is the comparison (latency).
    for precision in ${PRECISIONS:-f32 f16}; do
        step "$bin" bench --weights "$w/$arch.safetensors" --iters "$iters" --precision "$precision" --submit frame --layers 0 \
            --json "$out/ours_${arch}_fast_submitframe_$precision.json" >"$out/last_bench.txt" \
            && head -6 "$out/last_bench.txt" || echo "FAILED: bench $arch --submit frame $precision" >&2
    done
done
python3 tools/bench_torch.py time "$out/torch.json" || exit 1
python3 tools/bench_torch.py report "$out" | tee "$out/report.md"
