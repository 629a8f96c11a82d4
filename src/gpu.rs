//! The GPU context: adapter, device and queue, plus asynchronous readback.
//!
//! Nothing here blocks on wasm32: readback goes through `map_async` and a
//! future. Natively the device has to be polled for the callback to fire,
//! which `Device::poll` does (it waits for the queue, which is what a native
//! caller of `read` wants anyway).

use std::sync::{Arc, Mutex};

use crate::error::ErrorKind;
use crate::{bail, Error, Result};

pub struct Gpu {
    pub device: wgpu::Device,
    /// Validation and out-of-memory errors nobody caught: reported by the next
    /// readback as an `Err` instead of wgpu's default panic.
    errors: Arc<Mutex<Vec<Error>>>,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
}

/// A buffer destroyed when dropped, for the same reason as the device
/// below: a re-plan's old staging, scratch and pixel buffers would otherwise
/// hold GPU memory until the garbage collector runs. (Work already submitted
/// keeps a destroyed buffer until it completes.)
pub struct OwnedBuffer(pub wgpu::Buffer);

impl Drop for OwnedBuffer {
    fn drop(&mut self) {
        self.0.destroy();
    }
}

impl std::ops::Deref for OwnedBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.0
    }
}

/// The device and everything on it (weights, activations) freed when the
/// last engine on it goes: wgpu's browser backend does not destroy a
/// dropped device, so without this `dispose()` would leave it all to the
/// garbage collector, which GPU memory does not prompt.
impl Drop for Gpu {
    fn drop(&mut self) {
        self.device.destroy();
    }
}

impl Gpu {
    /// Opens the default (high-performance) adapter with the limits it offers.
    pub async fn new() -> Result<Gpu> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::of(
                    ErrorKind::Unsupported,
                    format!("no GPU adapter available ({e}); natively this needs Vulkan, Metal or DX12 (on Linux e.g. Mesa's lavapipe: apt install mesa-vulkan-drivers), in a browser WebGPU"),
                )
            })?;
        let limits = adapter.limits();
        // The shaders use 64- and 256-wide workgroups and at most 7 storage
        // buffers (the GEMMs: input, weights, bias, residual, output, F(x), a
        // folded input's bias).
        let needed = wgpu::Limits { max_compute_invocations_per_workgroup: 256, max_compute_workgroup_size_x: 256, max_storage_buffers_per_shader_stage: 7, ..wgpu::Limits::downlevel_defaults() };
        if let Some(fail) = limits_below(&limits, &needed) {
            bail!(Unsupported, "the GPU adapter is below the needed limits: {fail}");
        }
        let plain = adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16);
        let descriptor = wgpu::DeviceDescriptor { label: Some("resnet"), required_features: plain, required_limits: limits.clone(), ..Default::default() };
        // Tensor cores for the f16 path, where the adapter offers what
        // conv2d_coop.wgsl needs (see `coop_usable`); a device that cannot
        // be opened that way is opened without them.
        let mut opened = None;
        if coop_usable(&adapter) {
            let coop = wgpu::DeviceDescriptor {
                required_features: plain | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
                // SAFETY: wgpu's experimental features may have bugs; we ask for
                // cooperative matrices only, run them only in conv2d_coop.wgsl,
                // and the tests hold that kernel to the same references.
                experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() },
                ..descriptor.clone()
            };
            opened = adapter.request_device(&coop).await.ok().map(|d| (d, coop.required_features));
        }
        let ((device, queue), features) = match opened {
            Some(d) => d,
            None => (
                adapter.request_device(&descriptor).await.map_err(|e| Error::of(ErrorKind::Unsupported, format!("could not open the GPU device: {e}")))?,
                plain,
            ),
        };
        let errors = Arc::new(Mutex::new(Vec::new()));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut v) = lost.lock() {
                v.push(Error::of(ErrorKind::DeviceLost, format!("the GPU device was lost ({reason:?}: {message})")));
            }
        });
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(Error::of(ErrorKind::Gpu, format!("GPU error: {e}")));
            }
        }));
        Ok(Gpu { device, errors, queue, adapter_info: adapter.get_info(), limits, features })
    }

    /// The first GPU error raised since the last call, if any. A lost
    /// device is reported by every later call too: nothing on it works
    /// again, and a caller that retries on other errors must see that.
    pub fn take_error(&self) -> Option<Error> {
        let mut v = self.errors.lock().ok()?;
        // A lost device explains everything after it: report that first.
        let first = v.iter().find(|e| e.kind() == ErrorKind::DeviceLost).or(v.first()).cloned();
        v.retain(|e| e.kind() == ErrorKind::DeviceLost);
        first
    }

    /// Fails with DEVICE_LOST once the device is lost.
    pub fn check_lost(&self) -> Result<()> {
        match self.errors.lock().ok().and_then(|v| v.iter().find(|e| e.kind() == ErrorKind::DeviceLost).cloned()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `llvmpipe (LLVM 15.0.6, 256 bits) / Vulkan`, say.
    pub fn adapter_name(&self) -> String {
        let backend = match self.adapter_info.backend {
            wgpu::Backend::BrowserWebGpu => "WebGPU".to_string(),
            other => format!("{other:?}"),
        };
        if self.adapter_info.name.is_empty() {
            backend
        } else {
            format!("{} / {backend}", self.adapter_info.name)
        }
    }

    /// Whether the adapter is a software rasteriser (lavapipe, SwiftShader):
    /// the CPU backend trains faster than its kernels.
    pub fn is_software(&self) -> bool {
        let i = &self.adapter_info;
        let text = format!("{} {} {}", i.name, i.driver, i.driver_info).to_lowercase();
        i.device_type == wgpu::DeviceType::Cpu || ["swiftshader", "llvmpipe", "lavapipe", "software"].iter().any(|s| text.contains(s))
    }

    /// Catches validation and out-of-memory errors of the GPU work that
    /// follows, until [`ErrorScopes::check`].
    pub fn error_scopes(&self) -> ErrorScopes {
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        ErrorScopes { oom, validation }
    }
}

/// Error scopes opened by [`Gpu::error_scopes`].
pub struct ErrorScopes {
    oom: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
}

impl ErrorScopes {
    /// Closes the scopes: the first error they caught, described as happening while `what`.
    pub async fn check(self, what: &str) -> Result<()> {
        if let Some(e) = self.oom.pop().await {
            bail!(Gpu, "out of GPU memory while {what}: {e}");
        }
        if let Some(e) = self.validation.pop().await {
            bail!(Gpu, "GPU validation error while {what}: {e}");
        }
        Ok(())
    }
}

/// Maps `staging` for reading and returns a copy of its first `size` bytes.
pub async fn map_bytes(gpu: &Gpu, staging: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    map_into(gpu, staging, size, &mut out).await?;
    Ok(out)
}

/// Maps `staging` for reading and copies its first `size` bytes into `dst`,
/// reusing `dst`'s memory (the per-frame readback allocates nothing).
pub async fn map_into(gpu: &Gpu, staging: &wgpu::Buffer, size: u64, dst: &mut Vec<u8>) -> Result<()> {
    let (tx, rx) = futures_channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, 0..size, move |r| {
        let _ = tx.send(r);
    });
    #[cfg(not(target_arch = "wasm32"))]
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| gpu.take_error().unwrap_or_else(|| Error::of(ErrorKind::Gpu, format!("GPU wait failed: {e}"))))?;
    let mapped = rx.await;
    if !matches!(mapped, Ok(Ok(()))) {
        // In a browser the device-lost and error events that explain a
        // failed map may arrive after it: let them land first, so a lost
        // device reads as DEVICE_LOST (which the page recovers from).
        crate::clock::yield_now().await;
    }
    mapped
        .map_err(|_| gpu.take_error().unwrap_or_else(|| Error::of(ErrorKind::DeviceLost, "GPU readback was cancelled (the device was lost)")))?
        .map_err(|e| gpu.take_error().unwrap_or_else(|| Error::of(ErrorKind::Gpu, format!("GPU readback failed: {e}"))))?;
    if let Some(e) = gpu.take_error() {
        staging.unmap();
        return Err(e);
    }
    // Unmapped on every path, or the next frame's copy into it would fail.
    let copied = staging.get_mapped_range(0..size).map(|view| {
        dst.clear();
        dst.extend_from_slice(&view);
    });
    staging.unmap();
    copied.map_err(|e| Error::of(ErrorKind::Gpu, format!("GPU readback failed: {e}")))
}

/// Whether conv2d_coop.wgsl can run on tensor cores here: the adapter has
/// cooperative matrices with an f16 × f16 → f32 16×16×16 configuration, and
/// its subgroups are exactly 32 wide (the kernel's workgroup of 32 is then
/// one subgroup, the scope the fragments live in).
fn coop_usable(adapter: &wgpu::Adapter) -> bool {
    use wgpu::CooperativeScalarType as T;
    if !adapter.features().contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16) {
        return false;
    }
    let config = adapter.cooperative_matrix_properties().iter().any(|c| (c.m_size, c.n_size, c.k_size) == (16, 16, 16) && c.ab_type == T::F16 && c.cr_type == T::F32);
    let info = adapter.get_info();
    config && info.subgroup_min_size == 32 && info.subgroup_max_size == 32
}

fn limits_below(have: &wgpu::Limits, need: &wgpu::Limits) -> Option<String> {
    let checks = [
        ("max_compute_invocations_per_workgroup", have.max_compute_invocations_per_workgroup, need.max_compute_invocations_per_workgroup),
        ("max_compute_workgroup_size_x", have.max_compute_workgroup_size_x, need.max_compute_workgroup_size_x),
        ("max_storage_buffers_per_shader_stage", have.max_storage_buffers_per_shader_stage, need.max_storage_buffers_per_shader_stage),
        ("max_compute_workgroups_per_dimension", have.max_compute_workgroups_per_dimension, need.max_compute_workgroups_per_dimension),
    ];
    checks
        .iter()
        .find(|(_, h, n)| h < n)
        .map(|(name, h, n)| format!("{name} is {h}, at least {n} is needed"))
}
