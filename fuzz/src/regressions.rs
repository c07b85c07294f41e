//! Every input the fuzzer ever failed on, kept in `fuzz/regressions/<target>-<what>.bin`
//! and run again by `cargo test`: each must now give an answer (an error or success), not a
//! panic. The built-in seeds run too.

#[test]
fn every_saved_input_is_answered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let target = name.split('-').next().unwrap();
        let run = crate::target(target).unwrap_or_else(|| panic!("{name}: no target {target}"));
        let input = std::fs::read(&path).unwrap();
        let outcome = run(&input);
        println!("{name}: {outcome:?}");
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn every_builtin_seed_is_answered() {
    for (name, run, seeds) in crate::targets::ALL {
        for (i, s) in seeds().iter().enumerate() {
            println!("{name} builtin-{i}: {:?}", run(s));
        }
    }
}

/// The targets are named in three places: here, the cargo-fuzz project and scripts/fuzz.sh.
#[test]
fn every_target_has_a_libfuzzer_entry_and_runs_in_fuzz_sh() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("libfuzzer/Cargo.toml")).unwrap();
    let script = std::fs::read_to_string(root.join("../scripts/fuzz.sh")).unwrap();
    let all = script
        .lines()
        .find_map(|l| l.strip_prefix("all=("))
        .and_then(|l| l.strip_suffix(')'))
        .expect("fuzz.sh's all=(...) line");
    let names: Vec<&str> = crate::targets::ALL.iter().map(|t| t.0).collect();
    assert_eq!(
        all.split(' ').collect::<Vec<_>>(),
        names,
        "fuzz.sh's targets"
    );
    for name in names {
        assert!(
            manifest.contains(&format!(
                "name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\""
            )),
            "fuzz/libfuzzer/Cargo.toml has no [[bin]] {name}"
        );
        assert!(root
            .join(format!("libfuzzer/fuzz_targets/{name}.rs"))
            .exists());
    }
}
