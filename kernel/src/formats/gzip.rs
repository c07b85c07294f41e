//! gzip (RFC 1952) decompression into a caller-provided buffer, for gzip-compressed
//! initramfs images. The inflater is `miniz_oxide`'s; this module reads the member header,
//! checks the CRC-32 and length in the trailer, and names what is wrong.

use alloc::boxed::Box;
use core::fmt;
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

const ID: [u8; 2] = [0x1f, 0x8b];
const CM_DEFLATE: u8 = 8;
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;

/// What is wrong with a gzip stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GzipError {
    /// Shorter than a header and trailer.
    Truncated,
    /// Not deflate-compressed (`CM` ≠ 8).
    UnsupportedMethod(u8),
    /// The deflate stream is corrupt or ends early.
    Corrupt,
    /// The output buffer is smaller than the data.
    OutputTooSmall {
        /// The buffer's size.
        capacity: usize,
    },
    /// The CRC-32 in the trailer does not match the data.
    BadCrc {
        /// From the trailer.
        expected: u32,
        /// Of the decompressed data.
        actual: u32,
    },
    /// The length in the trailer does not match the data.
    BadLength {
        /// From the trailer (modulo 2^32).
        expected: u32,
        /// Decompressed bytes.
        actual: usize,
    },
    /// Non-zero bytes after the first member (concatenated members are not supported).
    TrailingData {
        /// Where they start.
        offset: usize,
    },
}

impl fmt::Display for GzipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GzipError::Truncated => write!(f, "gzip: stream truncated"),
            GzipError::UnsupportedMethod(m) => {
                write!(f, "gzip: compression method {m} is not deflate")
            }
            GzipError::Corrupt => write!(f, "gzip: corrupt deflate data"),
            GzipError::OutputTooSmall { capacity } => {
                write!(f, "gzip: data larger than the {capacity}-byte buffer")
            }
            GzipError::BadCrc { expected, actual } => {
                write!(
                    f,
                    "gzip: CRC-32 {actual:#010x} does not match the trailer's {expected:#010x}"
                )
            }
            GzipError::BadLength { expected, actual } => {
                write!(
                    f,
                    "gzip: {actual} bytes decompressed, the trailer says {expected}"
                )
            }
            GzipError::TrailingData { offset } => write!(
                f,
                "gzip: data after the first member at byte {offset} (concatenated gzip \
                 members are not supported)"
            ),
        }
    }
}

/// Whether `data` starts like a gzip stream.
pub fn is_gzip(data: &[u8]) -> bool {
    data.len() >= 2 && data[..2] == ID
}

/// The decompressed size the trailer announces (modulo 2^32), to size the output buffer.
pub fn announced_size(data: &[u8]) -> Result<usize, GzipError> {
    if data.len() < 18 {
        return Err(GzipError::Truncated);
    }
    let t = &data[data.len() - 4..];
    Ok(u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize)
}

fn header_len(data: &[u8]) -> Result<usize, GzipError> {
    if data.len() < 18 || !is_gzip(data) {
        return Err(GzipError::Truncated);
    }
    if data[2] != CM_DEFLATE {
        return Err(GzipError::UnsupportedMethod(data[2]));
    }
    let flg = data[3];
    let mut off = 10;
    let get = |o: usize| data.get(o).copied().ok_or(GzipError::Truncated);
    if flg & FEXTRA != 0 {
        let xlen = get(off)? as usize | (get(off + 1)? as usize) << 8;
        off += 2 + xlen;
    }
    for flag in [FNAME, FCOMMENT] {
        if flg & flag != 0 {
            while get(off)? != 0 {
                off += 1;
            }
            off += 1;
        }
    }
    if flg & FHCRC != 0 {
        off += 2;
    }
    Ok(off)
}

/// Decompresses one gzip member into `out` and returns the number of bytes written.
pub fn decompress_into(data: &[u8], out: &mut [u8]) -> Result<usize, GzipError> {
    let start = header_len(data)?;
    let mut state = Box::<DecompressorOxide>::default();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let input = data.get(start..).ok_or(GzipError::Truncated)?;
    let (status, consumed, written) = decompress(&mut state, input, out, 0, flags);
    match status {
        TINFLStatus::Done => {}
        TINFLStatus::HasMoreOutput => {
            return Err(GzipError::OutputTooSmall {
                capacity: out.len(),
            })
        }
        TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
            return Err(GzipError::Truncated)
        }
        _ => return Err(GzipError::Corrupt),
    }
    let trailer_at = start + consumed;
    let t = data
        .get(trailer_at..trailer_at + 8)
        .ok_or(GzipError::Truncated)?;
    let expected_crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let expected_len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
    let actual = crc32fast::hash(&out[..written]);
    if actual != expected_crc {
        return Err(GzipError::BadCrc {
            expected: expected_crc,
            actual,
        });
    }
    if written as u32 != expected_len {
        return Err(GzipError::BadLength {
            expected: expected_len,
            actual: written,
        });
    }
    if let Some(p) = data[trailer_at + 8..].iter().position(|&b| b != 0) {
        return Err(GzipError::TrailingData {
            offset: trailer_at + 8 + p,
        });
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut c = Command::new("gzip")
            .args(["-c", "-n"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the host's gzip");
        c.stdin.take().unwrap().write_all(data).unwrap();
        c.wait_with_output().unwrap().stdout
    }

    #[test]
    fn round_trip_with_host_gzip() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let z = gzip(&data);
        assert!(is_gzip(&z));
        assert_eq!(announced_size(&z).unwrap(), data.len());
        let mut out = vec![0; data.len()];
        assert_eq!(decompress_into(&z, &mut out), Ok(data.len()));
        assert_eq!(out, data);
        let mut small = vec![0; data.len() - 1];
        assert!(matches!(
            decompress_into(&z, &mut small),
            Err(GzipError::OutputTooSmall { .. })
        ));
    }

    #[test]
    fn truncated_and_corrupt_streams_are_named() {
        let data = b"hello hello hello hello hello".repeat(100);
        let z = gzip(&data);
        let mut out = vec![0; data.len()];
        for cut in [5, 12, z.len() / 2, z.len() - 3] {
            assert!(
                decompress_into(&z[..cut], &mut out).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 8] ^= 0xff; // CRC
        assert!(matches!(
            decompress_into(&bad, &mut out),
            Err(GzipError::BadCrc { .. })
        ));
        let mut bad = z.clone();
        bad[2] = 9;
        assert_eq!(
            decompress_into(&bad, &mut out),
            Err(GzipError::UnsupportedMethod(9))
        );
        let mut two = z.clone();
        two.extend_from_slice(&z);
        assert!(matches!(
            decompress_into(&two, &mut out),
            Err(GzipError::TrailingData { .. })
        ));
        let mut padded = z.clone();
        padded.extend_from_slice(&[0; 64]);
        assert!(decompress_into(&padded, &mut out).is_ok());
    }
}
