//! The device handle: `Send + Sync`, settings shared by every clone, and
//! several devices (here: several on one adapter) used from several threads.
mod common;

use common::{gpu, random};
use wgtrain::optim::{Adam, Optim};
use wgtrain::train::{fit, Report, TrainConfig};
use wgtrain::{Cpu, Dataset, Gpu, Init, MatmulKernel, Sequential};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn handles_and_models_cross_threads() {
    assert_send_sync::<Gpu>();
    assert_send_sync::<Cpu<f32>>();
    assert_send_sync::<Cpu<f64>>();
    assert_send_sync::<wgtrain::GpuTensor>();
    fn assert_send<T: Send>() {}
    assert_send::<wgtrain::Model<Gpu>>();
    assert_send::<wgtrain::Model<Cpu<f32>>>();
}

#[test]
fn a_kernel_chosen_after_build_reaches_the_model() {
    let Some(g) = gpu() else { return };
    let model = Sequential::new(4)
        .dense(3, Init::XavierUniform)
        .build(&g, 0)
        .unwrap();
    for kernel in [MatmulKernel::Registers, MatmulKernel::Workgroup] {
        g.set_matmul_kernel(kernel);
        assert_eq!(model.backend().matmul_kernel(), kernel);
    }
}

fn data() -> Dataset {
    let x = random(5, 64 * 6);
    let labels = (0..64).map(|i| (i % 3) as u32).collect();
    let features = x
        .iter()
        .enumerate()
        .map(|(i, v)| v + if (i % 6) % 3 == (i / 6) % 3 { 1.5 } else { 0.0 })
        .collect();
    Dataset::classification(features, 6, labels, 3).unwrap()
}

/// Trains a small network on `g` and returns its parameters.
fn train(g: &Gpu) -> Vec<f64> {
    let mut model = Sequential::new(6)
        .dense(8, Init::HeNormal)
        .relu()
        .dense(3, Init::XavierUniform)
        .build(g, 7)
        .unwrap();
    let mut opt = Optim::new(Adam::default()).unwrap();
    let config = TrainConfig {
        epochs: 3,
        batch_size: 16,
        report: Report::Quiet,
        ..TrainConfig::default()
    };
    fit(&mut model, &mut opt, &data(), None, &config).unwrap();
    let mut all = Vec::new();
    for name in model.parameter_names() {
        all.extend(model.parameter(&name).unwrap().2);
    }
    all
}

#[test]
fn devices_on_several_threads_train_like_one() {
    let Some(first) = gpu() else { return };
    let alone = train(&first);
    let handles: Vec<_> = Gpu::open_many("0,0")
        .expect("two devices on the first adapter")
        .into_iter()
        .map(|g| std::thread::spawn(move || train(&g)))
        .collect();
    for h in handles {
        assert_eq!(
            h.join().unwrap(),
            alone,
            "same seed, same result on any thread"
        );
    }
}

#[test]
fn adapters_are_listed_and_chosen_by_index_or_name() {
    let Some(_) = gpu() else { return };
    let adapters = wgtrain::gpu::list_adapters();
    assert!(!adapters.is_empty());
    for (i, a) in adapters.iter().enumerate() {
        assert_eq!(a.index, i);
        assert!(a.to_string().starts_with(&format!("{i}: ")), "{a}");
    }
    let by_index = Gpu::open("0").unwrap();
    assert_eq!(by_index.adapter_info().name, adapters[0].info.name);
    // Any part of the name, in any case.
    let part = adapters[0].info.name[..3].to_uppercase();
    assert_eq!(
        Gpu::open(&part).unwrap().adapter_info().name,
        adapters[0].info.name
    );
    assert_eq!(Gpu::open_many(" 0 , 0 ").unwrap().len(), 2);
}

#[test]
fn a_device_that_does_not_exist_is_a_typed_error_naming_the_adapters() {
    let Some(_) = gpu() else { return };
    let n = wgtrain::gpu::list_adapters().len();
    for bad in [n.to_string(), "no such adapter".to_string()] {
        let e = Gpu::open(&bad).err().expect("no such device");
        let msg = e.to_string();
        assert!(matches!(e, wgtrain::Error::NoAdapter { .. }), "{e}");
        assert!(
            msg.contains(&format!("{bad:?}")) && msg.contains("0: "),
            "{msg}"
        );
    }
    assert!(matches!(
        Gpu::open_many("0,,1"),
        Err(wgtrain::Error::NoAdapter { .. })
    ));
}
