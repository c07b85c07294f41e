//! `memcheck`: the memory routines of `arch/mem.S` against byte-at-a-time references, over
//! every size up to 300 bytes and beyond, every source and destination alignment within 16
//! bytes, overlaps in both directions, and every byte value that matters.

use crate::println;
use alloc::vec;

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

/// Runs every case; returns the number run, or the first failure.
fn check() -> Result<usize, alloc::string::String> {
    let mut cases = 0;
    let cap = 65536 + 7 + 64;
    let mut src = vec![0u8; cap];
    let mut dst = vec![0u8; cap];
    let mut reference = vec![0u8; cap];
    for n in sizes() {
        for (so, doff) in (0..16).flat_map(|s| (0..16).map(move |d| (s, d))) {
            // The large sizes only at a few alignments: they take long under emulation.
            if n > 300 && !(so == 0 || so == 7) && !(doff == 0 || doff == 9) {
                continue;
            }
            // Only the bytes a case can touch, and a margin on both sides, are set and checked.
            let span = n + 48;
            for (i, b) in src[..span].iter_mut().enumerate() {
                *b = pattern(i, 1);
            }
            for (i, b) in dst[..span].iter_mut().enumerate() {
                *b = pattern(i, 2);
            }
            // SAFETY: both ranges lie in their buffers (cap covers n + 16).
            unsafe {
                core::ptr::copy_nonoverlapping(src.as_ptr().add(so), dst.as_mut_ptr().add(doff), n)
            };
            for i in 0..span {
                let want = if (doff..doff + n).contains(&i) {
                    pattern(i - doff + so, 1)
                } else {
                    pattern(i, 2)
                };
                if rd(&dst, i) != want {
                    return Err(alloc::format!("memcpy n={n} src+{so} dst+{doff}: byte {i}"));
                }
            }
            cases += 1;
        }
        // memmove within one buffer, the destination below and above the source by 1..=17.
        for shift in (1..=17).chain([63, 64, 65]) {
            for up in [false, true] {
                let base = 32;
                let (s, d) = if up {
                    (base, base + shift)
                } else {
                    (base + shift, base)
                };
                let span = n + base + 65 + 32;
                if span > cap {
                    continue;
                }
                for (i, b) in dst[..span].iter_mut().enumerate() {
                    *b = pattern(i, 3);
                }
                for (i, r) in reference[..span].iter_mut().enumerate() {
                    *r = pattern(i, 3);
                }
                for i in 0..n {
                    reference[d + i] = pattern(s + i, 3);
                }
                // SAFETY: both ranges lie in the buffer.
                unsafe { core::ptr::copy(dst.as_ptr().add(s), dst.as_mut_ptr().add(d), n) };
                for (i, &want) in reference[..span].iter().enumerate() {
                    if rd(&dst, i) != want {
                        return Err(alloc::format!("memmove n={n} {s}->{d}: byte {i}"));
                    }
                }
                cases += 1;
            }
        }
        // memset and memcmp at a few offsets.
        for off in [0, 1, 7, 15] {
            for value in [0u8, 0x5a, 0xff] {
                let span = n + 48;
                for (i, b) in dst[..span].iter_mut().enumerate() {
                    *b = pattern(i, 4);
                }
                // SAFETY: in the buffer.
                unsafe { core::ptr::write_bytes(dst.as_mut_ptr().add(off), value, n) };
                for i in 0..span {
                    let want = if (off..off + n).contains(&i) {
                        value
                    } else {
                        pattern(i, 4)
                    };
                    if rd(&dst, i) != want {
                        return Err(alloc::format!("memset n={n} +{off} {value:#x}: byte {i}"));
                    }
                }
                cases += 1;
            }
            if n == 0 {
                continue;
            }
            let span = n + 16;
            for (i, b) in src[..span].iter_mut().enumerate() {
                *b = pattern(i, 5);
            }
            reference[..span].copy_from_slice(&src[..span]);
            let (a, b) = (&src[off..off + n], &reference[off..off + n]);
            if a != b {
                return Err(alloc::format!("memcmp n={n} +{off}: equal buffers differ"));
            }
            // The last byte, then the first, made larger in one of them: the sign follows.
            for at in [n - 1, 0] {
                let keep = reference[off + at];
                reference[off + at] = keep.wrapping_add(0x80);
                let ours = src[off..off + n].cmp(&reference[off..off + n]);
                let want = rd(&src, off + at).cmp(&rd(&reference, off + at));
                if ours != want {
                    return Err(alloc::format!(
                        "memcmp n={n} +{off}: byte {at} ordered wrongly"
                    ));
                }
                reference[off + at] = keep;
                cases += 1;
            }
        }
    }
    Ok(cases)
}

/// The `memcheck` command.
pub fn command() -> Result<(), alloc::string::String> {
    let cases = check().map_err(|e| alloc::format!("FAIL {e}"))?;
    println!("memcheck: ok cases={cases}");
    Ok(())
}
