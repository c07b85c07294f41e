//! A CPU that does not answer (`wedge N`): kexec and the crash path go on without it.

use crate::*;

/// Boots the test Image on `virt` at EL2 with 4 PSCI CPUs, wedges CPU `wedged` (interrupts
/// masked, spinning: it never answers the stop request) and runs `then`; `next.rc` is the
/// next kernel's (or the crash kernel's) script.
pub(crate) fn wedged_run(wedged: usize, then: &str, scratch_name: &str, append: &str) -> Run {
    let rd = initramfs(
        scratch_name,
        Some(&format!("wedge {wedged}\n{then}")),
        &[("next.rc", b"cpus\npoweroff\n")],
    );
    boot(Boot {
        el: 2,
        smp: 4,
        gic3: true,
        initrd: Some(rd),
        image: Some(fault_image().to_path_buf()),
        append: Some(append.into()),
        ..Default::default()
    })
}

/// The CPUs (`cpus` lines) of the last kernel that listed them: (state, method) each.
pub(crate) fn last_cpu_listing(run: &Run) -> Vec<(String, String)> {
    let all = cpu_methods(run);
    all[all.len() - 4..].to_vec()
}

/// A CPU spinning with interrupts masked when `kexec -e` comes: within the stop bound the
/// kexec names it and goes on; the next kernel starts the other CPUs and names the one it
/// could not have (PSCI says it is still on).
#[test]
fn kexec_goes_on_without_a_wedged_cpu() {
    let run = wedged_run(
        3,
        "kexec -l --self --append=\"init=/next.rc\"\nkexec -e\n",
        "wedge-kexec.cpio",
        "",
    );
    assert!(
        run.out
            .contains("wedge: cpu3 (mpidr 0x3) spins with interrupts masked"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("smp: cpu 0x3 did not stop within 2000 ms: left running where it was"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("kexec: going on without 1 CPU(s) that did not stop"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("smp: cpu 0x3: PSCI CPU_ON returned"),
        "{}",
        run.out
    );
    assert!(run.out.contains("smp: 3 CPUs online"), "{}", run.out);
    let cpus = last_cpu_listing(&run);
    let states: Vec<&str> = cpus.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        states,
        ["online (boot)", "online", "online", "failed"],
        "{}",
        run.out
    );
    assert_eq!(run.status, Some(0));
}

/// The same at a panic with a crash kernel loaded: the crash path names the CPU, goes on,
/// and the crash kernel reports the CPUs it got.
#[test]
fn crash_kexec_goes_on_without_a_wedged_cpu() {
    let run = wedged_run(
        2,
        "kexec -p --self --append=\"init=/next.rc\"\npanic with a wedged CPU\n",
        "wedge-crash.cpio",
        "crashkernel=32M",
    );
    assert!(
        run.out
            .contains("smp: cpu 0x2 did not stop within 2000 ms: left running where it was"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("crash: going on without 1 CPU(s) that did not stop"),
        "{}",
        run.out
    );
    assert!(run.out.contains("crash: panic: PANIC: "), "{}", run.out);
    let cpus = last_cpu_listing(&run);
    let states: Vec<&str> = cpus.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        states,
        ["online (boot)", "online", "failed", "online"],
        "{}",
        run.out
    );
}
