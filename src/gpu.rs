//! The GPU: burn's wgpu device, what the adapter offers, uploads and async readback.
//!
//! burn (through cubecl) requests the adapter's full limits and every feature it has, so the
//! largest storage binding and buffer the adapter allows are ours; this module reports them and
//! whether `shader-f16` / `subgroups` exist (lavapipe has both, Chrome's SwiftShader neither).
//! One runtime per process: burn refuses to initialise the same device twice, so [`Gpu::get`]
//! hands out one shared instance. Readback is async only (`into_data_async`), which is the one
//! path that works both natively and in the browser.
//!
//! Device loss (driver reset, the browser reclaiming memory): wgpu's lost callback marks the
//! instance lost, tells the hook set by [`set_device_lost_hook`] (the page), and every later
//! readback fails with `DeviceLostError`. The next [`Gpu::get`] brings up a new device from a
//! fresh adapter and registers it with burn as a new runtime (burn never re-initialises a
//! selector, but accepts any number of registered setups), so the page reloads the model
//! without a refresh.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use burn::backend::wgpu::CubeTensor;
use burn::backend::wgpu::{wgpu, WgpuSetup};
use burn::backend::{Cube, CubeDevice};
use burn::cubecl::client::Client;
use burn::cubecl::MemoryScope;
use burn::cubecl::server::Handle;
use burn::tensor::{DType, Device, Shape, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::kernels::Precision;

/// What the adapter is and what it allows, as shown by `aigc inspect` and the page.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub max_storage_binding: u64,
    pub max_buffer: u64,
    pub max_workgroup_storage: u32,
    pub max_invocations_per_workgroup: u32,
    pub max_workgroups_per_dim: u32,
    pub max_storage_buffers_per_stage: u32,
    pub shader_f16: bool,
    pub subgroups: bool,
}

/// The device every tensor of the engine lives on.
pub struct Gpu {
    pub device: Device,
    pub(crate) client: Client,
    pub(crate) cube_device: CubeDevice,
    pub report: AdapterReport,
    /// Largest storage binding the kernels may use (the adapter's, or smaller for tests).
    pub max_binding: u64,
    /// A 4-byte buffer bound where a kernel's optional input is absent (WGSL needs every
    /// binding bound); made once so the hot path uploads nothing for it.
    pub(crate) unused: Handle,
    /// The wgpu handles under burn's runtime (for recovery and the loss test hook).
    setup: WgpuSetup,
    lost: Arc<Lost>,
}

/// Set by wgpu's device-lost callback.
#[derive(Default)]
struct Lost {
    flag: AtomicBool,
    message: Mutex<String>,
}

static SHARED: Mutex<Option<Arc<Gpu>>> = Mutex::new(None);

/// Test knob: pretend the storage-binding limit is this many bytes (0 = the adapter's). Natively
/// also `AIGC_MAX_BINDING`; the browser sets it through `Engine.create`.
static MAX_BINDING_OVERRIDE: AtomicU64 = AtomicU64::new(0);

/// Make the kernels split weights as if the binding limit were `bytes` (tests of the split path).
pub fn set_max_binding_override(bytes: u64) {
    MAX_BINDING_OVERRIDE.store(bytes, Ordering::SeqCst);
}

type LostHook = Box<dyn Fn(&str) + Send>;
static LOST_HOOK: Mutex<Option<LostHook>> = Mutex::new(None);

/// Call `hook(message)` whenever a device is lost (the browser binding posts it to the page).
pub fn set_device_lost_hook(hook: impl Fn(&str) + Send + 'static) {
    if let Ok(mut h) = LOST_HOOK.lock() {
        *h = Some(Box::new(hook));
    }
}

impl Gpu {
    /// The process-wide GPU, initialised on first use.
    ///
    /// The lock is held across initialisation so two threads (parallel tests) cannot both try
    /// to register the runtime; in the browser there is one thread and one caller.
    #[allow(clippy::await_holding_lock)]
    pub async fn get() -> Result<Arc<Gpu>> {
        let mut slot = SHARED.lock().map_err(|_| poisoned())?;
        let gpu = match slot.as_ref() {
            Some(gpu) if !gpu.is_lost() => return Ok(gpu.clone()),
            Some(lost) => Arc::new(Gpu::recreate(&lost.setup.instance).await?),
            None => Arc::new(Gpu::init().await?),
        };
        *slot = Some(gpu.clone());
        Ok(gpu)
    }

    async fn init() -> Result<Gpu> {
        let (device, setup) = Device::wgpu_options()
            .init_with_setup_async()
            .await
            .map_err(|e| Error::WebGpuUnavailable(e.to_string()))?;
        Gpu::from_setup(device, setup)
    }

    /// A new device after a loss: a fresh adapter (a WebGPU adapter gives only one device),
    /// the same full limits and features burn asks for, registered as a new burn runtime.
    async fn recreate(instance: &wgpu::Instance) -> Result<Gpu> {
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::WebGpuUnavailable(format!("no adapter after the device was lost: {e}")))?;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("aigc"),
                required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
                required_limits: adapter.limits(),
                memory_hints: wgpu::MemoryHints::MemoryUsage,
                trace: wgpu::Trace::Off,
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
            })
            .await
            .map_err(|e| Error::WebGpuUnavailable(format!("no device after the device was lost: {e}")))?;
        let backend = adapter.get_info().backend;
        let setup = WgpuSetup { instance: instance.clone(), adapter, device, queue, backend };
        let burn_device = Device::wgpu_options().setup(setup.clone()).init().map_err(|e| Error::Gpu(format!("registering the new device: {e}")))?;
        Gpu::from_setup(burn_device, setup)
    }

    fn from_setup(device: Device, setup: WgpuSetup) -> Result<Gpu> {
        let lost = Arc::new(Lost::default());
        let flag = lost.clone();
        setup.device.set_device_lost_callback(move |reason, msg| {
            let message = format!("{reason:?}: {msg}");
            if let Ok(mut m) = flag.message.lock() {
                *m = message.clone();
            }
            flag.flag.store(true, Ordering::SeqCst);
            if let Ok(h) = LOST_HOOK.lock() {
                if let Some(h) = h.as_ref() {
                    h(&message);
                }
            }
        });
        let info = setup.adapter.get_info();
        let limits = setup.device.limits();
        let features = setup.device.features();
        use burn::backend::wgpu::wgpu::Features;
        let report = AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
            max_storage_binding: limits.max_storage_buffer_binding_size as u64,
            max_buffer: limits.max_buffer_size,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_stage: limits.max_storage_buffers_per_shader_stage,
            shader_f16: features.contains(Features::SHADER_F16),
            subgroups: features.contains(Features::SUBGROUP),
        };
        // Borrow the client and device from a one-element tensor: the same objects every
        // burn op on this device uses, so our kernels and burn's share one queue.
        let probe = Tensor::<1>::zeros([1], &device)
            .try_into_primitive::<Cube>()
            .map_err(|e| Error::Gpu(format!("the wgpu device is not a cubecl device: {e:?}")))?;
        let forced = Some(MAX_BINDING_OVERRIDE.load(Ordering::SeqCst)).filter(|&b| b > 0);
        let max_binding = forced
            .or_else(|| std::env::var("AIGC_MAX_BINDING").ok().and_then(|v| v.parse::<u64>().ok()))
            .map_or(report.max_storage_binding, |v| v.min(report.max_storage_binding));
        let unused = probe.client.create_from_slice(&[0u8; 4]);
        Ok(Gpu {
            unused,
            device,
            client: probe.client.clone(),
            cube_device: probe.device.clone(),
            report,
            max_binding,
            setup,
            lost,
        })
    }

    /// Whether the device was lost (everything on it is gone; [`Gpu::get`] makes a new one).
    pub fn is_lost(&self) -> bool {
        self.lost.flag.load(Ordering::SeqCst)
    }

    /// `DeviceLostError` if the device is gone.
    pub fn check(&self) -> Result<()> {
        if self.is_lost() {
            let msg = self.lost.message.lock().map(|m| m.clone()).unwrap_or_default();
            return Err(Error::DeviceLost(format!("{msg}; load the model again")));
        }
        Ok(())
    }

    /// Test hook: destroy the device the way a driver reset or the browser would take it away.
    pub fn simulate_device_loss(&self) {
        self.setup.device.destroy();
    }

    /// Upload raw bytes (padded to a whole number of u32 words) as a device buffer.
    pub fn upload_bytes(&self, bytes: &[u8]) -> Handle {
        if bytes.len() % 4 == 0 && !bytes.is_empty() {
            return self.client.create_from_slice(bytes);
        }
        let mut padded = Vec::with_capacity(bytes.len().div_ceil(4).max(1) * 4);
        padded.extend_from_slice(bytes);
        padded.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
        self.client.create_from_slice(&padded)
    }

    /// Upload f32 values as a contiguous tensor of the given shape.
    pub fn upload_f32(&self, data: &[f32], shape: &[usize]) -> CubeTensor {
        let handle = self.upload_bytes(bytemuck::cast_slice(data));
        self.tensor(handle, shape)
    }

    /// Upload u32 values (token ids) as a buffer.
    pub fn upload_u32(&self, data: &[u32]) -> Handle {
        self.upload_bytes(bytemuck::cast_slice(data))
    }

    /// Bytes of device memory burn's pools hold right now (in use plus kept for reuse),
    /// weights included. `aigc image --json` reports its largest value over the steps.
    pub fn memory_reserved(&self) -> u64 {
        self.client.memory_report(MemoryScope::Device).usage().bytes_reserved
    }

    /// An uninitialised f32 tensor.
    pub fn empty_f32(&self, shape: &[usize]) -> CubeTensor {
        self.empty(shape, Precision::F32)
    }

    /// An uninitialised tensor of f32 or f16 values (a kernel's output, stored as its input is).
    pub fn empty(&self, shape: &[usize], p: Precision) -> CubeTensor {
        let n: usize = shape.iter().product::<usize>().max(1);
        // Whole u32 words: an f16 tensor of odd length is still bound as a word array.
        let handle = self.client.empty((n * p.bytes()).div_ceil(4) * 4);
        let mut t = self.tensor(handle, shape);
        t.dtype = p.dtype();
        t
    }

    /// A zero-filled f32 tensor.
    pub fn zeros_f32(&self, shape: &[usize]) -> CubeTensor {
        let n: usize = shape.iter().product::<usize>().max(1);
        self.upload_f32(&vec![0.0; n], shape)
    }

    fn tensor(&self, handle: Handle, shape: &[usize]) -> CubeTensor {
        CubeTensor::new_contiguous(
            self.client.clone(),
            self.cube_device.clone(),
            Shape::from(shape.to_vec()),
            handle,
            DType::F32,
        )
    }

    /// Read an f32 (or f16, widened exactly) tensor back to the CPU (waits for all queued work
    /// before it).
    pub async fn read_f32(&self, t: &CubeTensor) -> Result<Vec<f32>> {
        self.check()?;
        // A rank-1 view of the same buffer: `Tensor<1>` must hold a rank-1 primitive.
        let n = t.meta.shape().num_elements();
        let mut flat = self.tensor(t.handle.clone(), &[n]);
        flat.dtype = t.dtype;
        let tensor = Tensor::<1>::from_primitive::<Cube>(flat);
        let tensor = match t.dtype {
            DType::F16 => tensor.cast(DType::F32),
            _ => tensor,
        };
        let data: TensorData = tensor
            .into_data_async()
            .await
            .map_err(|e| self.check().err().unwrap_or_else(|| Error::Gpu(format!("readback failed: {e:?}"))))?;
        data.try_into_vec::<f32>().map_err(|e| Error::Gpu(format!("readback type: {e:?}")))
    }

    /// Wrap a kernel output as a burn tensor, so burn ops (add, slice, …) can follow.
    pub fn to_burn<const D: usize>(t: CubeTensor) -> Tensor<D> {
        Tensor::<D>::from_primitive::<Cube>(t)
    }

    /// Take a burn tensor back to a contiguous kernel input.
    pub fn from_burn<const D: usize>(t: Tensor<D>) -> Result<CubeTensor> {
        let t = t
            .try_into_primitive::<Cube>()
            .map_err(|e| Error::Gpu(format!("tensor is not on the wgpu device: {e:?}")))?;
        Ok(burn::backend::wgpu::into_contiguous(t))
    }
}

fn poisoned() -> Error {
    Error::Gpu("GPU state lock poisoned by an earlier panic".into())
}
