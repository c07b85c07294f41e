//! Interrupts: the GIC, the tick, the UART's receive interrupt, IPIs, kexec from the tick.

use crate::*;

/// A Linux `/init` line that prints the architected timer's line of `/proc/interrupts`.
pub(crate) const TIMER_COUNTS: &str =
    "echo \"LINUX-TIMER $(/bin/busybox grep arch_timer /proc/interrupts)\"";

/// Every CPU's tick count from the last `cpus` listing printed.
pub(crate) fn cpu_ticks(run: &Run) -> Vec<u64> {
    let mut last = Vec::new();
    for l in run
        .out
        .lines()
        .filter(|l| l.starts_with("cpu") && l.contains("mpidr="))
    {
        if l.starts_with("cpu0 ") {
            last.clear();
        }
        if let Some(t) = l.split_whitespace().find_map(|w| w.strip_prefix("ticks=")) {
            last.push(t.parse().unwrap());
        }
    }
    last
}

/// Linux's timer interrupts counted on each of `cpus` CPUs (`TIMER_COUNTS`).
pub(crate) fn assert_linux_timer_counts(run: &Run, cpus: usize) {
    let line = run
        .line("LINUX-TIMER")
        .unwrap_or_else(|| panic!("no LINUX-TIMER line: {}", run.out));
    let counts: Vec<u64> = line
        .split_whitespace()
        .skip(2) // "LINUX-TIMER", "11:"
        .take(cpus)
        .map(|c| c.parse().unwrap_or_else(|_| panic!("{line}")))
        .collect();
    assert_eq!(counts.len(), cpus, "{line}");
    assert!(
        counts.iter().all(|&c| c > 0),
        "a CPU without timer interrupts: {line}"
    );
}

/// The `irqs` lines: per CPU, the named counters.
pub(crate) fn irq_counts(run: &Run) -> Vec<HashMap<String, u64>> {
    run.out
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with("cpu") && l.contains("timer_late_us_mean="))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
                .collect()
        })
        .collect()
}

/// Four CPUs idle at the prompt for 3 s: QEMU uses little host CPU (the tick slows to
/// 10 Hz when a CPU idles), the tick ran on every CPU, the typed line is answered (through the UART's receive interrupt) and every CPU
/// answers an IPI.
pub(crate) fn idle_tick_and_ipis(gic3: bool) {
    let run = boot(Boot {
        el: 2,
        smp: 4,
        gic3,
        initrd: Some(initramfs("idle.cpio", None, &[])),
        idle: Some(Duration::from_secs(3)),
        typed: Some("irqs\nipi\ncpus\npoweroff\n"),
        ..Default::default()
    });
    let cpu = run.idle_cpu.expect("measured");
    // A generous bound (the measured figure is in the README): polling would be 1.0 or more.
    assert!(
        cpu < 0.10,
        "QEMU used {:.0}% of a core at the idle prompt",
        cpu * 100.0
    );
    let irqs = irq_counts(&run);
    assert_eq!(irqs.len(), 4, "{}", run.out);
    for (i, c) in irqs.iter().enumerate() {
        // Idle, a CPU ticks at 10 Hz: about 30 ticks in 3 s (fewer if the host is slow).
        assert!(c["ticks"] >= 10, "cpu{i}: {c:?}");
        assert!(c["timer_late_us_max"] < 1_000_000, "cpu{i}: {c:?}");
    }
    assert!(
        irqs[0]["uart"] > 0,
        "the typed line came by interrupt: {:?}",
        irqs[0]
    );
    let version = if gic3 { "GICv3" } else { "GICv2" };
    assert!(run.out.contains(&format!(
        "irqs: {version} tick=100Hz timer_intid=27 uart_intid=33"
    )));
    for i in 1..4 {
        let ipi = run
            .line(&format!("ipi: cpu{i} mpidr={i:#x} rtt_us="))
            .unwrap_or_else(|| panic!("cpu{i} did not answer: {}", run.out));
        assert!(ipi.contains("rtt_ticks="), "{ipi}");
    }
    assert_eq!(run.status, Some(0));
}

#[test]
fn idle_tick_and_ipis_on_gicv2() {
    idle_tick_and_ipis(false);
}

#[test]
fn idle_tick_and_ipis_on_gicv3() {
    idle_tick_and_ipis(true);
}

/// Every hop kexecs from inside its boot CPU's timer interrupt handler (the tick active and
/// not ended), and with `kexec.gic=dirty` leaves the GIC as it is (distributor on, every
/// interrupt enabled, the tick's priority held in the CPU interface, its timer running):
/// each next kernel must reset the GIC to take a single tick, and it takes all of them, since
/// its own kexec needs one.
pub(crate) fn kexec_from_a_timer_interrupt(gic3: bool) {
    let rd = initramfs(
        &format!("from-irq-{gic3}.cpio"),
        Some("sleep 250\ncpus\nirqs\npoweroff\n"),
        &[],
    );
    let run = boot(Boot {
        el: 2,
        smp: 4,
        gic3,
        initrd: Some(rd),
        append: Some("kexec.chain=4 kexec.payload=16M kexec.from_irq kexec.gic=dirty".into()),
        ..Default::default()
    });
    let lines = check_chain(&run, 4, "2");
    for l in &lines {
        assert_eq!(l["cpus"], "4", "{l:?}");
    }
    let ticks = cpu_ticks(&run);
    assert_eq!(ticks.len(), 4, "{}", run.out);
    assert!(ticks.iter().all(|&t| t > 0), "{ticks:?}: {}", run.out);
}

#[test]
fn kexec_from_a_timer_interrupt_gicv2() {
    kexec_from_a_timer_interrupt(false);
}

#[test]
fn kexec_from_a_timer_interrupt_gicv3() {
    kexec_from_a_timer_interrupt(true);
}

/// Linux on a GICv3 with its ITS (4 CPUs) kexecs this kernel, which finds the redistributors
/// with LPIs on, turns them off, chains, and kexecs Linux, which brings up its GIC (LPIs and
/// all) again and counts timer interrupts on every CPU.
#[test]
fn linux_gicv3_lpis_then_this_kernel_then_linux() {
    let linux = linux_image();
    let last = linux_initramfs(TIMER_COUNTS, false, &[]);
    let ours = cpio::build(&[
        (
            "init.rc",
            S_IFREG | 0o644,
            b"irqs\nkexec -l /Image --initrd=/last.cpio --append=\"console=ttyAMA0 panic=-1 last-linux\"\nkexec -e\n",
        ),
        ("Image", S_IFREG | 0o644, &linux),
        ("last.cpio", S_IFREG | 0o644, &last),
    ]);
    let hobby = std::fs::read(image()).unwrap();
    let first = linux_initramfs(
        "/sbin/kexec -l /hobby.Image --initrd=/hobby.cpio --append=\"kexec.chain=2 kexec.payload=4M\"\n\
         /sbin/kexec -e",
        true,
        &[("hobby.Image", &hobby), ("hobby.cpio", &ours)],
    );
    let path = scratch("lpi-first.cpio");
    std::fs::write(&path, first).unwrap();
    let run = boot(Boot {
        el: 2,
        mem: "2G",
        smp: 4,
        gic3: true,
        linux: Some((
            fixture("linux/Image"),
            path,
            "console=ttyAMA0 panic=-1".into(),
        )),
        ..Default::default()
    });
    assert!(
        run.out.contains("ITS@0x0000000008080000"),
        "Linux used the ITS: {}",
        run.out
    );
    for i in 0..4 {
        let found = format!("irq: cpu {i:#x}: the previous kernel left LPIs on");
        assert!(run.out.contains(&found), "{found}: {}", run.out);
    }
    assert!(run.out.contains("turned them off"), "{}", run.out);
    Chain {
        hops: 2,
        cpus: Some("4"),
        ..Default::default()
    }
    .check(&run);
    let last_cmdline = run.lines("LINUX-CMDLINE").nth(1).unwrap();
    assert!(
        last_cmdline.trim_end().ends_with("last-linux"),
        "{last_cmdline}"
    );
    assert_eq!(run.lines("LINUX-CPUS 4").count(), 2);
    assert!(!run.out.contains("Booted with LPIs enabled"), "{}", run.out);
    assert_linux_timer_counts(&run, 4);
}
