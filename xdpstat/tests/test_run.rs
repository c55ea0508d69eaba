//! The embedded programs themselves, run by the kernel with
//! `BPF_PROG_TEST_RUN`: exact counts, XDP_PASS, frames unaltered, and no
//! increment lost when both CPUs run the program at once.

mod common;

use std::thread;

use aya::{
    maps::{Array, MapData, PerCpuArray},
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use common::{frame, pin_to_cpu, privileged};
use xdpstat::model::layout::Layout;
use xdpstat_common::{Counters, COUNTERS_MAP};

const XDP_PASS: u32 = 2;

fn load(layout: Layout) -> Ebpf {
    let mut ebpf = Ebpf::load(layout.object()).expect("load the embedded object");
    let prog: &mut Xdp = ebpf
        .program_mut(layout.program_name())
        .expect("program in object")
        .try_into()
        .expect("an XDP program");
    prog.load().expect("the verifier accepts it");
    ebpf
}

fn program(ebpf: &Ebpf, layout: Layout) -> &Xdp {
    ebpf.program(layout.program_name())
        .unwrap()
        .try_into()
        .unwrap()
}

/// The map's per-CPU values (one entry for the shared layout).
fn counters(ebpf: &Ebpf, layout: Layout) -> Vec<Counters> {
    let map = ebpf.map(COUNTERS_MAP).expect("counters map");
    match layout {
        Layout::Percpu => {
            let array = PerCpuArray::<&MapData, Counters>::try_from(map).unwrap();
            array.get(&0, 0).unwrap().iter().copied().collect()
        }
        Layout::Shared => {
            let array = Array::<&MapData, Counters>::try_from(map).unwrap();
            vec![array.get(&0, 0).unwrap()]
        }
    }
}

fn total(values: &[Counters]) -> Counters {
    values.iter().fold(Counters::default(), |a, c| Counters {
        packets: a.packets + c.packets,
        bytes: a.bytes + c.bytes,
    })
}

fn counts_every_run_exactly(test: &str, layout: Layout) {
    if !privileged(test) {
        return;
    }
    let ebpf = load(layout);
    let prog = program(&ebpf, layout);
    let mut expected = Counters::default();
    for (len, repeat) in [(14, 1), (64, 10), (1514, 1000), (3000, 7)] {
        let data = frame(len);
        let mut out = vec![0u8; len];
        let result = prog
            .test_run(TestRunOptions {
                data_in: Some(&data),
                data_out: Some(&mut out),
                repeat,
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        assert_eq!(result.return_value, XDP_PASS, "always XDP_PASS");
        assert_eq!(result.data_size_out as usize, len, "frame length unchanged");
        assert_eq!(out, data, "frame bytes unchanged");
        expected.packets += u64::from(repeat);
        expected.bytes += u64::from(repeat) * len as u64;
        assert_eq!(
            total(&counters(&ebpf, layout)),
            expected,
            "after {repeat} runs of {len} bytes"
        );
    }
}

#[test]
fn percpu_program_counts_every_run_exactly() {
    counts_every_run_exactly("percpu_program_counts_every_run_exactly", Layout::Percpu);
}

#[test]
fn shared_program_counts_every_run_exactly() {
    counts_every_run_exactly("shared_program_counts_every_run_exactly", Layout::Shared);
}

/// Both CPUs run the program a million times each, at once.
fn both_cpus_at_once(test: &str, layout: Layout) -> Vec<Counters> {
    const RUNS: u32 = 1_000_000;
    let ebpf = load(layout);
    let prog = program(&ebpf, layout);
    let data = frame(64);
    thread::scope(|s| {
        for cpu in 0..2 {
            let data = &data;
            s.spawn(move || {
                pin_to_cpu(cpu);
                let result = prog
                    .test_run(TestRunOptions {
                        data_in: Some(data),
                        repeat: RUNS,
                        ..TestRunOptions::default()
                    })
                    .expect("BPF_PROG_TEST_RUN");
                assert_eq!(result.return_value, XDP_PASS);
            });
        }
    });
    let values = counters(&ebpf, layout);
    assert_eq!(
        total(&values),
        Counters {
            packets: 2 * u64::from(RUNS),
            bytes: 2 * u64::from(RUNS) * 64
        },
        "{test}: no increment lost"
    );
    values
}

#[test]
fn shared_program_loses_no_increment_on_two_cpus() {
    if privileged("shared_program_loses_no_increment_on_two_cpus") {
        both_cpus_at_once(
            "shared_program_loses_no_increment_on_two_cpus",
            Layout::Shared,
        );
    }
}

#[test]
fn percpu_program_keeps_each_cpus_runs_in_its_slot() {
    if privileged("percpu_program_keeps_each_cpus_runs_in_its_slot") {
        let values = both_cpus_at_once(
            "percpu_program_keeps_each_cpus_runs_in_its_slot",
            Layout::Percpu,
        );
        assert_eq!(values[0].packets, 1_000_000);
        assert_eq!(values[1].packets, 1_000_000);
    }
}
