//! The Image's code: Cortex-A53 errata sequences in `.text`.

use crate::*;

/// The kernel ELF's `.text` (next to the Image: `scripts/build.sh` makes both), through
/// `llvm-objcopy` from Rust's `llvm-tools`, as `scripts/build.sh` uses it.
pub(crate) fn kernel_text() -> Vec<u8> {
    let elf = image().with_extension("");
    let objcopy = llvm_tool("llvm-objcopy");
    let out = scratch("kernel.text");
    let st = Command::new(&objcopy)
        .args(["-O", "binary", "--only-section=.text"])
        .arg(&elf)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", objcopy.display()));
    assert!(
        st.success(),
        "llvm-objcopy --only-section=.text {}",
        elf.display()
    );
    std::fs::read(out).unwrap()
}

/// Offsets of Cortex-A53 erratum 835769 sequences in `code`: a 64-bit multiply-accumulate
/// (`MADD`/`MSUB` on X registers, `SMADDL`/`SMSUBL`/`UMADDL`/`UMSUBL`; not the `MUL` aliases,
/// whose accumulator is XZR) right after a load or store (Arm ARM: the "Loads and Stores"
/// encoding group, op0 = x1x0).
pub(crate) fn a53_835769_sequences(code: &[u8]) -> Vec<usize> {
    const MAC64_MASK: u32 = 0xff60_0000; // sf, op54, 11011, op31 (without U), o0 free
    const MADD_MSUB_X: u32 = 0x9b00_0000;
    const XMADDL_XMSUBL: u32 = 0x9b20_0000; // SMADDL/SMSUBL, and with U (bit 23) UMADDL/UMSUBL
    const RA_SHIFT: u32 = 10;
    const XZR: u32 = 31;
    let words: Vec<u32> = code
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect();
    let is_mac64 = |i: u32| {
        matches!(i & MAC64_MASK, MADD_MSUB_X | XMADDL_XMSUBL) && (i >> RA_SHIFT) & 31 != XZR
    };
    let is_load_store = |i: u32| (i >> 25) & 0b0101 == 0b0100;
    (1..words.len())
        .filter(|&k| is_mac64(words[k]) && is_load_store(words[k - 1]))
        .map(|k| 4 * k)
        .collect()
}

#[test]
fn a53_835769_detector_knows_the_sequences() {
    let code = |w: &[u32]| w.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>();
    let ldr = 0xf940_0020; // ldr x0, [x1]
    let madd = 0x9b02_0c20; // madd x0, x1, x2, x3
    let umaddl = 0x9ba2_0c20; // umaddl x0, w1, w2, x3
    let mul = 0x9b02_7c20; // mul x0, x1, x2 (madd with xzr)
    let madd_w = 0x1b02_0c20; // madd w0, w1, w2, w3
    let nop = 0xd503_201f;
    assert_eq!(a53_835769_sequences(&code(&[ldr, madd])), [4]);
    assert_eq!(a53_835769_sequences(&code(&[ldr, umaddl])), [4]);
    assert!(a53_835769_sequences(&code(&[ldr, nop, madd])).is_empty());
    assert!(a53_835769_sequences(&code(&[ldr, mul, ldr, madd_w])).is_empty());
}

/// Offsets of Cortex-A53 erratum 843419 sequences in `code` (which starts on a page
/// boundary, as `.text` does): an `ADRP` in a page's last two words, a load or store, at most
/// one more instruction, then a load or store (unsigned offset) based on the `ADRP`'s
/// register. (LLD's `--fix-cortex-a53-843419` looks for the same, more finely.)
pub(crate) fn a53_843419_sequences(code: &[u8]) -> Vec<usize> {
    const ADRP_MASK: u32 = 0x9f00_0000;
    const ADRP: u32 = 0x9000_0000;
    const LS_UIMM_MASK: u32 = 0x3b00_0000;
    const LS_UIMM: u32 = 0x3900_0000;
    let words: Vec<u32> = code
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect();
    let is_load_store = |i: u32| (i >> 25) & 0b0101 == 0b0100;
    (0..words.len().saturating_sub(2))
        .filter(|&k| {
            let (adrp, rd) = (words[k], words[k] & 31);
            let based_on_rd = |i: u32| i & LS_UIMM_MASK == LS_UIMM && (i >> 5) & 31 == rd;
            matches!((4 * k) & 0xfff, 0xff8 | 0xffc)
                && adrp & ADRP_MASK == ADRP
                && is_load_store(words[k + 1])
                && (based_on_rd(words[k + 2]) || words.get(k + 3).is_some_and(|&i| based_on_rd(i)))
        })
        .map(|k| 4 * k)
        .collect()
}

#[test]
fn a53_843419_detector_knows_the_sequences() {
    let at = |offset: usize, w: &[u32]| {
        let mut code = vec![0u8; offset];
        code.extend(w.iter().flat_map(|i| i.to_le_bytes()));
        code
    };
    let adrp_x1 = 0x9000_0001; // adrp x1, 0
    let str_x0 = 0xf900_0040; // str x0, [x2]
    let ldr_via_x1 = 0xf940_0023; // ldr x3, [x1]
    let ldr_via_x4 = 0xf940_0083; // ldr x3, [x4]
    let nop = 0xd503_201f;
    let found = |offset, w: &[u32]| a53_843419_sequences(&at(offset, w));
    assert_eq!(found(0xff8, &[adrp_x1, str_x0, ldr_via_x1]), [0xff8]);
    assert_eq!(found(0xffc, &[adrp_x1, str_x0, nop, ldr_via_x1]), [0xffc]);
    assert!(found(0xff8, &[adrp_x1, str_x0, ldr_via_x4, nop]).is_empty());
    assert!(found(0xff8, &[adrp_x1, nop, ldr_via_x1, nop]).is_empty());
    assert!(found(0xff0, &[adrp_x1, str_x0, ldr_via_x1, nop]).is_empty());
}

/// The Image is built with the Cortex-A53 errata fixes Linux builds with
/// (`.cargo/config.toml`): no load or store is followed at once by a 64-bit
/// multiply-accumulate (835769), and no ADRP at a page's end feeds a load or store (843419).
#[test]
fn image_has_no_a53_erratum_sequence() {
    let text = kernel_text();
    assert!(text.len() > 64 << 10, "{} bytes of .text", text.len());
    for (erratum, found) in [
        (835769, a53_835769_sequences(&text)),
        (843419, a53_843419_sequences(&text)),
    ] {
        assert!(
            found.is_empty(),
            "{} erratum {erratum} sequences in .text, at offsets {:x?}",
            found.len(),
            &found[..found.len().min(8)]
        );
    }
}
