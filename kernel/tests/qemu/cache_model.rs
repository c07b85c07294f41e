//! The cache model (`tools/cache-model`): what real caches would get wrong, on one CPU and on several.

use crate::*;

/// The cache model's `key=value` counters (`tools/cache-model`), from its report.
pub(crate) fn cache_report(run: &Run) -> HashMap<String, u64> {
    let report = run.cache.as_deref().expect("run under the cache model");
    report
        .lines()
        .filter(|l| l.starts_with("cache-model: ") && !l.contains(" pa=") && !l.contains(" gen="))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// Violations per generation (a kernel, from CPU 0 turning its MMU on to the next time:
/// its life, its kexec hand-over and the next kernel's entry with the MMU off).
pub(crate) fn cache_generations(run: &Run) -> Vec<u64> {
    let report = run.cache.as_deref().expect("run under the cache model");
    report
        .lines()
        .filter_map(|l| l.strip_prefix("cache-model: gen="))
        .map(|l| {
            let v = l.split_whitespace().nth(1).unwrap();
            v.strip_prefix("violations=").unwrap().parse().unwrap()
        })
        .collect()
}

/// Real caches would have held what this run needed: no violation, and the model saw
/// cacheable and non-cacheable accesses, cache maintenance and instruction fetches (so a
/// model that sees nothing fails), and could place every `dc` operand.
pub(crate) fn assert_coherent(run: &Run) {
    let r = cache_report(run);
    let report = run.cache.as_deref().unwrap();
    assert_eq!(r["violations"], 0, "{report}");
    for seen in [
        "cacheable",
        "non_cacheable",
        "fetch_checks",
        "dc_civac",
        "ic_iallu",
    ] {
        assert!(r[seen] > 0, "the model saw no {seen}: {report}");
    }
    assert_eq!(
        r["unresolved_dc"], 0,
        "dc operands the model could not place: {report}"
    );
}

pub(crate) fn cache_model_chain(el: u8, report: &'static str) {
    let rd = initramfs(&format!("cm-chain-el{el}.cpio"), Some("poweroff\n"), &[]);
    let run = boot(Boot {
        el,
        initrd: Some(rd),
        append: Some("kexec.chain=4 kexec.payload=4M kexec.mmu=both".into()),
        cache_model: Some(report),
        ..Default::default()
    });
    let lines = check_chain(&run, 4, &el.to_string());
    let modes: Vec<&str> = lines[1..].iter().map(|l| l["reloc_mmu"].as_str()).collect();
    assert_eq!(
        modes,
        ["on", "off", "on", "off"],
        "both relocation modes ran"
    );
    let copied: Vec<u64> = lines[1..]
        .iter()
        .map(|l| l["copied"].parse().unwrap())
        .collect();
    assert!(
        copied.contains(&0) && copied.iter().any(|&c| c > 0),
        "hops written in place and hops copied both ran under the model: {copied:?}"
    );
    assert_coherent(&run);
}

/// A 4-hop chain at EL2, relocating with the MMU on and off in turn, under the cache model.
#[test]
fn cache_model_chain_at_el2() {
    cache_model_chain(2, "cm-chain-el2.txt");
}

/// The same at EL1.
#[test]
fn cache_model_chain_at_el1() {
    cache_model_chain(1, "cm-chain-el1.txt");
}

/// The crash path under the model: `kexec -p --self` into the `crashkernel=` region (every
/// segment written in place at load time, nothing copied at the panic), a panic, the ELF
/// core header written at the panic, and the crash kernel reading the old log ring: every
/// access coherent.
#[test]
fn cache_model_crash_kexec() {
    let rd = initramfs(
        "cm-crash.cpio",
        Some("echo CM-CRASH-MARK\nkexec -p --self --append=\"init=/capture.rc\"\npanic under the model\n"),
        &[("capture.rc", b"poweroff\n")],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        append: Some("crashkernel=32M".into()),
        cache_model: Some("cm-crash.txt"),
        ..Default::default()
    });
    assert!(run.out.contains("crash| CM-CRASH-MARK"), "{}", run.out);
    assert!(run.out.contains("crash: panic: PANIC: "), "{}", run.out);
    assert_eq!(run.status, Some(0));
    assert_coherent(&run);
}

/// `kexec -l` of a file (this Image, with its own initrd and command line), under the model.
#[test]
fn cache_model_kexec_a_file() {
    let next = initramfs("cm-next.cpio", Some("echo FILE-KEXEC-OK\npoweroff\n"), &[]);
    let image = std::fs::read(image()).unwrap();
    let next = std::fs::read(next).unwrap();
    let rd = initramfs(
        "cm-file.cpio",
        Some("kexec -l /Image --initrd=/next.cpio --append=\"cache-model-file\"\nkexec -e\n"),
        &[("Image", &image), ("next.cpio", &next)],
    );
    let run = boot(Boot {
        el: 2,
        initrd: Some(rd),
        cache_model: Some("cm-file.txt"),
        ..Default::default()
    });
    assert!(run.out.contains("FILE-KEXEC-OK"), "{}", run.out);
    assert!(
        run.out.contains("command line: cache-model-file"),
        "{}",
        run.out
    );
    assert_eq!(run.status, Some(0));
    assert_coherent(&run);
}

/// Debian's Linux kexec'd at EL2, under the model: this kernel, the hand-over and Linux's
/// entry up to turning its MMU on (generations 0 and 1) are clean. What Linux does after
/// that is Linux's (the model also reports its text patching, as when QEMU boots it).
#[test]
fn cache_model_kexec_into_linux() {
    let run = kexec_into_linux(2, Some("cm-linux.txt"));
    let gens = cache_generations(&run);
    let report = run.cache.as_deref().unwrap();
    assert!(gens.len() >= 3, "Linux never turned its MMU on: {report}");
    assert_eq!(gens[..2], [0, 0], "{report}");
    let r = cache_report(&run);
    for seen in [
        "cacheable",
        "non_cacheable",
        "fetch_checks",
        "dc_civac",
        "ic_iallu",
    ] {
        assert!(r[seen] > 0, "the model saw no {seen}: {report}");
    }
}

/// EDK2 starts the Image through its EFI stub, which copies it to a 2 MiB-aligned address
/// with the caches on, cleans it, turns its MMU off and enters it; then a kexec: under the
/// model, no violation anywhere (the firmware included). EDK2's own `dc` operands at EL2
/// are often not placeable (`unresolved_dc`): an unapplied clean or invalidate can only add
/// reports, never hide one, so zero violations stands.
#[test]
fn cache_model_efi_stub_self_move() {
    let rd = initramfs("cm-efi.cpio", Some("poweroff\n"), &[]);
    let run = boot(Boot {
        el: 2,
        load: Load::Uefi { acpi: false },
        initrd: Some(rd),
        append: Some("kexec.chain=1 kexec.payload=4M".into()),
        cache_model: Some("cm-efi.txt"),
        ..Default::default()
    });
    assert!(
        run.out.contains("efistub: moved the Image to"),
        "{}",
        run.out
    );
    check_chain(&run, 1, "2");
    let r = cache_report(&run);
    let report = run.cache.as_deref().unwrap();
    assert_eq!(r["violations"], 0, "{report}");
    // The stub cleans with dc civac (arch::clean_inval_dcache), as the kernel does.
    for seen in [
        "cacheable",
        "non_cacheable",
        "fetch_checks",
        "dc_civac",
        "ic_iallu",
    ] {
        assert!(r[seen] > 0, "the model saw no {seen}: {report}");
    }
}

/// The Image under test with one instruction of the relocation page replaced by a `nop`:
/// the second `dc civac, x9` (the MMU-on copy's clean) or the `ic iallu`.
pub(crate) fn without_maintenance(which: u32, nth: usize) -> PathBuf {
    const NOP: u32 = 0xd503_201f;
    const B_SELF: u32 = 0x1400_0000;
    let mut bytes = std::fs::read(image()).unwrap();
    let word = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    // The relocation page: 4 KiB aligned, with 16 `b .` vector slots at +0x800.
    let page = (0..bytes.len() - 0x1000)
        .step_by(0x1000)
        .find(|&p| (0..16).all(|k| word(&bytes, p + 0x800 + 0x80 * k) == B_SELF))
        .expect("the relocation page");
    let hits: Vec<usize> = (page..page + 0x800)
        .step_by(4)
        .filter(|&a| word(&bytes, a) == which)
        .collect();
    let at = hits[nth];
    bytes[at..at + 4].copy_from_slice(&NOP.to_le_bytes());
    let path = scratch(&format!("no-{which:08x}-{nth}.Image"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The negative control: a relocation page without its clean, or without its I-cache
/// invalidation, passes the chain in plain QEMU, and the model catches it.
#[test]
fn cache_model_catches_missing_maintenance() {
    const DC_CIVAC_X9: u32 = 0xd50b_7e29;
    const IC_IALLU: u32 = 0xd508_751f;
    for (image, report, kind) in [
        (
            without_maintenance(DC_CIVAC_X9, 1),
            "cm-no-civac.txt",
            "fetch-stale",
        ),
        (
            without_maintenance(IC_IALLU, 0),
            "cm-no-iallu.txt",
            "fetch-stale",
        ),
    ] {
        let rd = initramfs("cm-neg.cpio", Some("poweroff\n"), &[]);
        let run = boot(Boot {
            el: 2,
            initrd: Some(rd),
            image: Some(image),
            // Every page through the relocation loop: that is the code under test.
            append: Some("kexec.chain=2 kexec.payload=4M kexec.copy=all".into()),
            cache_model: Some(report),
            ..Default::default()
        });
        assert!(run.line("chain: PASS").is_some(), "{}", run.out);
        let r = cache_report(&run);
        assert!(
            r["violations"] > 0 && r[kind] > 0,
            "{report}: {:?}",
            run.cache
        );
    }
}

/// The model followed `cpus` CPUs (told apart by MPIDR unless `by_index`), and saw each
/// reset that PSCI made (`resets` counts power-on too).
pub(crate) fn assert_model_cpus(run: &Run, cpus: u64, by_index: bool) {
    let r = cache_report(run);
    let report = run.cache.as_deref().unwrap();
    assert_eq!(r["cpus"], cpus, "CPUs the model followed: {report}");
    assert_eq!(r["by_mpidr"], u64::from(!by_index), "{report}");
    assert_eq!(r["cpu_slot_clashes"], 0, "{report}");
}

/// A Raspberry Pi 4 as QEMU models it, 4 CPUs from spin tables, under the model with one
/// I-cache and one TLB per CPU: a chain whose every hop parks CPUs 1-3 in the pen (which they
/// never leave by a reset, so their I-caches keep what they held) and releases them into the
/// next kernel; relocation with the MMU on and off in turn; `copy` "auto" (zero copy) or
/// "all". Every CPU clean, every hop.
pub(crate) fn cache_model_raspi4b_chain(copy: &str, report: &'static str) -> Run {
    let rd = initramfs(
        &format!("cm-rpi4-{copy}.cpio"),
        Some("cpus\npoweroff\n"),
        &[],
    );
    let run = boot(Boot {
        el: 2,
        raspi4b: true,
        dtb: Some(fixture("rpi4-qemu.dtb")),
        initrd: Some(rd),
        append: Some(format!(
            "kexec.chain=3 kexec.payload=4M kexec.mmu=both kexec.copy={copy}"
        )),
        cache_model: Some(report),
        ..Default::default()
    });
    let lines = check_chain(&run, 3, "2");
    for l in &lines {
        assert_eq!(l["cpus"], "4", "every CPU up at every hop: {l:?}");
    }
    run
}

#[test]
fn cache_model_raspi4b_spin_table_chain_zero_copy() {
    let run = cache_model_raspi4b_chain("auto", "cm-rpi4-auto.txt");
    assert_coherent(&run);
    assert_model_cpus(&run, 4, false);
}

/// The same with every page copied by the relocation (`kexec.copy=all`), then Debian's
/// Linux, which releases CPUs 1-3 from the pen: this kernel's generations and the hand-over
/// to Linux up to its MMU are clean on every CPU. (Linux's own reports after that are its
/// text patching and user pages, as in `cache_model_kexec_into_linux`: not asserted.)
#[test]
fn cache_model_raspi4b_spin_table_chain_copy_all_then_linux() {
    let run = raspi4b_chain_into_linux(
        "cm-rpi4-linux.cpio",
        "kexec.chain=2 kexec.payload=4M kexec.mmu=both kexec.copy=all",
        Some("cm-rpi4-linux.txt"),
    );
    let lines = check_chain(&run, 2, "2");
    for l in &lines[1..] {
        assert_eq!(l["cpus"], "4", "{l:?}");
        assert!(l["copied"].parse::<u64>().unwrap() > 0, "{l:?}");
    }
    assert_eq!(run.line("LINUX-CPUS"), Some("LINUX-CPUS 4"), "{}", run.out);
    let gens = cache_generations(&run);
    let report = run.cache.as_deref().unwrap();
    // The boot, three kernels of ours (the last one's hand-over and Linux's entry with it).
    assert!(
        gens.len() >= 5,
        "Linux never turned its MMU on (status {:?}): {report}\n{}",
        run.status,
        run.out
    );
    assert_eq!(gens[..4], [0, 0, 0, 0], "{report}");
    assert_model_cpus(&run, 4, false);
}

/// A Pi 4 under TF-A (BL31 as the armstub, PSCI; the test-only warm-reset patch), under the
/// model: CPU_OFF/CPU_ON at every hop go through BL31 at EL3 (its MMU and caches on), and
/// each CPU comes back through its reset vector, with empty caches.
#[test]
fn cache_model_raspi4b_tfa_chain() {
    let rd = initramfs("cm-tfa.cpio", Some("poweroff\n"), &[]);
    let run = boot(Boot {
        raspi4b: true,
        load: Load::firmware("tfa"),
        initrd: Some(rd),
        append: Some("kexec.chain=2 kexec.payload=4M kexec.mmu=both".into()),
        cache_model: Some("cm-tfa.txt"),
        ..Default::default()
    });
    let lines = check_chain(&run, 2, "2");
    for l in &lines {
        assert_eq!(l["cpus"], "4", "{l:?}");
    }
    assert_coherent(&run);
    assert_model_cpus(&run, 4, false);
    // Power-on, and the warm reset after each CPU_OFF (3 CPUs, 2 hops).
    assert!(cache_report(&run)["resets"] >= 4 + 2 * 3, "{:?}", run.cache);
}

/// `virt` with 4 PSCI CPUs under the model: every hop turns CPUs 1-3 off (CPU_OFF) and on
/// again (CPU_ON resets them: empty caches), and runs its kexec from inside the tick's
/// handler with the GIC left dirty. At EL2 (GICv3; CPUs told apart by VMPIDR_EL2 under
/// round-robin TCG) and at EL1 (GICv2; no EL2, so multi-threaded TCG and QEMU's index).
pub(crate) fn cache_model_virt_psci_chain(el: u8, gic3: bool, report: &'static str) {
    let rd = initramfs(&format!("cm-psci-el{el}.cpio"), Some("poweroff\n"), &[]);
    let run = boot(Boot {
        el,
        smp: 4,
        gic3,
        initrd: Some(rd),
        append: Some(
            "kexec.chain=2 kexec.payload=4M kexec.mmu=both kexec.from_irq kexec.gic=dirty".into(),
        ),
        cache_model: Some(report),
        ..Default::default()
    });
    let lines = check_chain(&run, 2, &el.to_string());
    for l in &lines {
        assert_eq!(l["cpus"], "4", "every CPU back at every hop: {l:?}");
    }
    assert_coherent(&run);
    assert_model_cpus(&run, 4, el == 1);
    // Power-on (4) and CPU_ON after CPU_OFF at each of the 2 hops (3 each).
    assert!(cache_report(&run)["resets"] >= 4 + 2 * 3, "{:?}", run.cache);
}

#[test]
fn cache_model_virt_psci_chain_el2_gicv3() {
    cache_model_virt_psci_chain(2, true, "cm-psci-el2.txt");
}

#[test]
fn cache_model_virt_psci_chain_el1_gicv2() {
    cache_model_virt_psci_chain(1, false, "cm-psci-el1.txt");
}

/// `kexec -p` with 4 CPUs under the model, then a panic: CPUs 1-3 stop (CPU_OFF), the ELF
/// core header is written and the crash kernel (this one, in its region) starts its CPUs
/// again and reads the old log; and the same on a Pi 4, whose spin-table CPUs stop in a loop
/// of the dead kernel (no pen at a panic), which the crash kernel leaves alone.
#[test]
fn cache_model_crash_kexec_with_4_cpus() {
    for raspi4b in [false, true] {
        let rd = initramfs(
            &format!("cm-crash-smp-{raspi4b}.cpio"),
            Some("echo CM-SMP-CRASH\nkexec -p --self --append=\"init=/capture.rc\"\npanic with 4 CPUs\n"),
            &[("capture.rc", b"cpus\npoweroff\n")],
        );
        let report: &'static str = if raspi4b {
            "cm-crash-rpi4.txt"
        } else {
            "cm-crash-smp.txt"
        };
        let run = boot(Boot {
            el: 2,
            smp: 4,
            raspi4b,
            dtb: raspi4b.then(|| fixture("rpi4-qemu.dtb")),
            initrd: Some(rd),
            append: Some("crashkernel=32M".into()),
            cache_model: Some(report),
            ..Default::default()
        });
        assert!(run.out.contains("crash| CM-SMP-CRASH"), "{}", run.out);
        assert!(!run.out.contains("did not stop"), "{}", run.out);
        let capture_cpus = if raspi4b {
            // Not waited for: each would cost the 10 s start timeout.
            assert!(
                run.out.contains(
                    "smp: cpu 0x1: not started: a crash kernel cannot release spin-table CPUs"
                ),
                "{}",
                run.out
            );
            ["online (boot)", "failed", "failed", "failed"]
        } else {
            ["online (boot)", "online", "online", "online"]
        };
        let cpus = last_cpu_listing(&run);
        let states: Vec<&str> = cpus.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(states, capture_cpus, "{}", run.out);
        let r = cache_report(&run);
        assert_eq!(r["violations"], 0, "{:?}", run.cache);
        assert_model_cpus(&run, 4, false);
    }
}

/// The SMP negative controls (the test Image's `fault.skip=`, kernel/src/fault.rs): each
/// leaves out one piece of maintenance that only another CPU needs, passes in plain QEMU,
/// and is caught. The pen without its `ic iallu`: CPUs 1-3 fetch the next kernel through
/// I-caches that still hold the old one. The pen page invalidated with `ic iallu` (this CPU
/// only): CPUs 1-3 fetch the pen's new code through stale I-caches. A mailbox not cleaned:
/// the released CPU reads memory (caches off) below the boot CPU's dirty line.
#[test]
fn cache_model_catches_missing_smp_maintenance() {
    for (skip, kind) in [
        ("pen-iallu", "fetch-stale"),
        ("pen-ialluis", "fetch-stale"),
        ("mailbox-clean", "nc-load-dirty"),
    ] {
        let report: &'static str = Box::leak(format!("cm-rpi4-no-{skip}.txt").into_boxed_str());
        let rd = initramfs("cm-rpi4-neg.cpio", Some("poweroff\n"), &[]);
        let run = boot(Boot {
            el: 2,
            raspi4b: true,
            dtb: Some(fixture("rpi4-qemu.dtb")),
            initrd: Some(rd),
            image: Some(fault_image().to_path_buf()),
            append: Some(format!("kexec.chain=1 kexec.payload=4M fault.skip={skip}")),
            cache_model: Some(report),
            ..Default::default()
        });
        let lines = chain_lines(&run);
        assert_eq!(lines.last().unwrap()["cpus"], "4", "{}", run.out);
        assert!(run.line("chain: PASS").is_some(), "{skip}: {}", run.out);
        let r = cache_report(&run);
        let cache = run.cache.as_deref().unwrap();
        assert!(r[kind] > 0, "{skip}: no {kind}: {cache}");
        // Reported against CPUs 1-3, never the boot CPU, which did its own maintenance.
        let cpus: Vec<&str> = cache
            .lines()
            .filter(|l| l.starts_with(&format!("cache-model: {kind}: ")))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("cpu")))
            .collect();
        assert!(
            !cpus.is_empty() && cpus.iter().all(|c| *c != "cpu0"),
            "{skip}: {cache}"
        );
    }
}

/// `name`'s offset in the Image whose ELF is next to `image` (`scripts/build.sh` writes
/// both), through `llvm-nm` from Rust's `llvm-tools`.
pub(crate) fn symbol_offset(image: &Path, name: &str) -> usize {
    let elf = image.with_extension("");
    let nm = llvm_tool("llvm-nm");
    let out = Command::new(&nm).arg(&elf).output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let addr = |sym: &str| {
        table
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[2] == sym).then(|| u64::from_str_radix(f[0], 16).unwrap())
            })
            .unwrap_or_else(|| panic!("{sym} not in {}", elf.display()))
    };
    (addr(name) - addr("_text")) as usize
}

/// Early cache hygiene, under the model, with a loader that leaves dirty lines over the
/// image's BSS, heap and tables (the test stub's `fault.efi=dirty-bss`, as EDK2 zero-filling
/// SizeOfImage with its caches on would): each of the two defences alone keeps the boot
/// clean, and without both the boot code's MMU-off writes of its early tables land under
/// dirty lines (`nc-store-dirty`), which plain QEMU never shows.
#[test]
fn cache_model_early_tables_under_dirty_lines() {
    // The fault Image with the boot code's invalidate of its early tables made a `nop`.
    const NOP: u32 = 0xd503_201f;
    let mut bytes = std::fs::read(fault_image()).unwrap();
    let at = symbol_offset(fault_image(), "early_tables_inval");
    assert_eq!(bytes[at + 3] & 0xfc, 0x94, "a bl at early_tables_inval");
    bytes[at..at + 4].copy_from_slice(&NOP.to_le_bytes());
    let no_inval = scratch("no-early-inval.Image");
    std::fs::write(&no_inval, bytes).unwrap();

    let rd = initramfs("cm-efi-dirty.cpio", Some("poweroff\n"), &[]);
    let run = |image: &Path, skip_clean: bool, report: &'static str| {
        let skip = if skip_clean {
            " fault.skip=efi-clean-bss"
        } else {
            ""
        };
        let run = boot(Boot {
            el: 2,
            load: Load::Uefi { acpi: false },
            image: Some(image.to_path_buf()),
            initrd: Some(rd.clone()),
            append: Some(format!(
                "fault.efi=dirty-bss{skip} kexec.chain=1 kexec.payload=4M"
            )),
            cache_model: Some(report),
            ..Default::default()
        });
        assert!(run.line("chain: PASS").is_some(), "{report}: {}", run.out);
        let r = cache_report(&run);
        let cache = run.cache.clone().unwrap();
        (r, cache)
    };
    // Both defences: the stub cleans the whole image_size; nothing dirty is left to drop.
    let (both, report) = run(fault_image(), false, "cm-efi-dirty-both.txt");
    assert_eq!(both["violations"], 0, "{report}");
    // The stub's clean of the file only: the boot code's invalidate drops the dirty lines.
    let (inval, report) = run(fault_image(), true, "cm-efi-dirty-inval.txt");
    assert_eq!(inval["violations"], 0, "{report}");
    assert!(
        inval["discarded_dirty"] > both["discarded_dirty"],
        "the boot code dropped the loader's dirty lines: {report}"
    );
    // The stub's clean alone.
    let (clean, report) = run(&no_inval, false, "cm-efi-dirty-clean.txt");
    assert_eq!(clean["violations"], 0, "{report}");
    // Neither: the early tables are written under dirty lines.
    let (neither, report) = run(&no_inval, true, "cm-efi-dirty-neither.txt");
    assert!(neither["nc-store-dirty"] > 0, "{report}");
}
