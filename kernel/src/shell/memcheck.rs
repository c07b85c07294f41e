//! `memcheck`: the memory routines of `arch/mem.S` against byte-at-a-time references, over
//! every size up to 300 bytes and beyond, every source and destination alignment within 16
//! bytes, overlaps in both directions, and every byte value that matters.

use crate::println;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Sizes: all small ones, then around the loop's 64-byte steps and a page.
fn sizes() -> impl Iterator<Item = usize> {
    (0..=300).chain([511, 512, 513, 1023, 4095, 4096, 4097, 65536 + 7])
}

/// A byte pattern that differs at every offset (and from the destination's).
fn pattern(i: usize, seed: u8) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8
}

/// Byte `i` of `buf`, read so that the compiler cannot assume what the routine under test
/// (foreign assembly, reached through raw pointers) left there.
fn rd(buf: &[u8], i: usize) -> u8 {
    core::hint::black_box(buf[i])
}

/// The buffers every case works in: a source, a destination, and what the destination must
/// hold afterwards.
struct Buffers {
    src: Vec<u8>,
    dst: Vec<u8>,
    reference: Vec<u8>,
}

/// Their size: the largest case, its misalignment and a margin.
const CAP: usize = 65536 + 7 + 64;

type Outcome = Result<usize, String>;

/// Runs every case; returns the number run, or the first failure.
fn check() -> Outcome {
    let mut b = Buffers {
        src: vec![0; CAP],
        dst: vec![0; CAP],
        reference: vec![0; CAP],
    };
    let mut cases = 0;
    for n in sizes() {
        cases += check_memcpy(&mut b, n)?;
        cases += check_memmove(&mut b, n)?;
        for off in [0, 1, 7, 15] {
            cases += check_memset(&mut b, n, off)?;
            cases += check_memcmp(&mut b, n, off)?;
        }
    }
    Ok(cases)
}

/// `memcpy` of `n` bytes at every source and destination alignment within 16 bytes (the
/// large sizes at a few only: they take long under emulation).
fn check_memcpy(b: &mut Buffers, n: usize) -> Outcome {
    let mut cases = 0;
    for (so, doff) in (0..16).flat_map(|s| (0..16).map(move |d| (s, d))) {
        if n > 300 && !(so == 0 || so == 7) && !(doff == 0 || doff == 9) {
            continue;
        }
        // Only the bytes a case can touch, and a margin on both sides, are set and checked.
        let span = n + 48;
        for (i, x) in b.src[..span].iter_mut().enumerate() {
            *x = pattern(i, 1);
        }
        for (i, x) in b.dst[..span].iter_mut().enumerate() {
            *x = pattern(i, 2);
        }
        // SAFETY: both ranges lie in their buffers (CAP covers n + 16).
        unsafe {
            core::ptr::copy_nonoverlapping(b.src.as_ptr().add(so), b.dst.as_mut_ptr().add(doff), n)
        };
        for i in 0..span {
            let want = if (doff..doff + n).contains(&i) {
                pattern(i - doff + so, 1)
            } else {
                pattern(i, 2)
            };
            if rd(&b.dst, i) != want {
                return Err(format!("memcpy n={n} src+{so} dst+{doff}: byte {i}"));
            }
        }
        cases += 1;
    }
    Ok(cases)
}

/// `memmove` of `n` bytes within one buffer, the destination below and above the source by
/// 1..=17 and around a 64-byte step.
fn check_memmove(b: &mut Buffers, n: usize) -> Outcome {
    let mut cases = 0;
    for shift in (1..=17).chain([63, 64, 65]) {
        for up in [false, true] {
            let base = 32;
            let (s, d) = if up {
                (base, base + shift)
            } else {
                (base + shift, base)
            };
            let span = n + base + 65 + 32;
            if span > CAP {
                continue;
            }
            for (i, x) in b.dst[..span].iter_mut().enumerate() {
                *x = pattern(i, 3);
            }
            for (i, r) in b.reference[..span].iter_mut().enumerate() {
                *r = pattern(i, 3);
            }
            for i in 0..n {
                b.reference[d + i] = pattern(s + i, 3);
            }
            // SAFETY: both ranges lie in the buffer.
            unsafe { core::ptr::copy(b.dst.as_ptr().add(s), b.dst.as_mut_ptr().add(d), n) };
            for (i, &want) in b.reference[..span].iter().enumerate() {
                if rd(&b.dst, i) != want {
                    return Err(format!("memmove n={n} {s}->{d}: byte {i}"));
                }
            }
            cases += 1;
        }
    }
    Ok(cases)
}

/// `memset` of `n` bytes at offset `off`, with 0, 0x5a and 0xff.
fn check_memset(b: &mut Buffers, n: usize, off: usize) -> Outcome {
    let mut cases = 0;
    for value in [0u8, 0x5a, 0xff] {
        let span = n + 48;
        for (i, x) in b.dst[..span].iter_mut().enumerate() {
            *x = pattern(i, 4);
        }
        // SAFETY: in the buffer.
        unsafe { core::ptr::write_bytes(b.dst.as_mut_ptr().add(off), value, n) };
        for i in 0..span {
            let want = if (off..off + n).contains(&i) {
                value
            } else {
                pattern(i, 4)
            };
            if rd(&b.dst, i) != want {
                return Err(format!("memset n={n} +{off} {value:#x}: byte {i}"));
            }
        }
        cases += 1;
    }
    Ok(cases)
}

/// `memcmp` of `n` bytes at offset `off`: equal buffers, then the last byte and the first
/// made larger in one of them (the sign must follow).
fn check_memcmp(b: &mut Buffers, n: usize, off: usize) -> Outcome {
    if n == 0 {
        return Ok(0);
    }
    let span = n + 16;
    for (i, x) in b.src[..span].iter_mut().enumerate() {
        *x = pattern(i, 5);
    }
    b.reference[..span].copy_from_slice(&b.src[..span]);
    if b.src[off..off + n] != b.reference[off..off + n] {
        return Err(format!("memcmp n={n} +{off}: equal buffers differ"));
    }
    let mut cases = 0;
    for at in [n - 1, 0] {
        let keep = b.reference[off + at];
        b.reference[off + at] = keep.wrapping_add(0x80);
        let ours = b.src[off..off + n].cmp(&b.reference[off..off + n]);
        let want = rd(&b.src, off + at).cmp(&rd(&b.reference, off + at));
        if ours != want {
            return Err(format!("memcmp n={n} +{off}: byte {at} ordered wrongly"));
        }
        b.reference[off + at] = keep;
        cases += 1;
    }
    Ok(cases)
}

/// The `memcheck` command.
pub fn command() -> Result<(), String> {
    let cases = check().map_err(|e| format!("FAIL {e}"))?;
    println!("memcheck: ok cases={cases}");
    Ok(())
}
