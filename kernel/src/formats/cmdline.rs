//! The kernel command line (`/chosen/bootargs`): Linux-style words, `key=value` or bare flags,
//! with double quotes around values that contain spaces (`init="/my init.rc"`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// One parameter: `key` alone, or `key=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The name before `=`.
    pub key: String,
    /// The value after `=`, without quotes; `None` for a bare flag.
    pub value: Option<String>,
}

/// A parsed command line. Later parameters win over earlier ones with the same key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// Parameters in order.
    pub params: Vec<Param>,
}

/// A command line that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    /// A `"` with no closing `"`.
    UnterminatedQuote {
        /// Byte offset of the opening quote.
        at: usize,
    },
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::UnterminatedQuote { at } => {
                write!(f, "command line: the quote at byte {at} is never closed")
            }
        }
    }
}

/// Splits `s` into words at unquoted whitespace, removing the quotes.
pub fn split_words(s: &str) -> Result<Vec<String>, CmdlineError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote_at = None;
    for (i, c) in s.char_indices() {
        match c {
            '"' => {
                quote_at = if quote_at.is_some() { None } else { Some(i) };
                in_word = true;
            }
            c if c.is_whitespace() && quote_at.is_none() => {
                if in_word {
                    words.push(core::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if let Some(at) = quote_at {
        return Err(CmdlineError::UnterminatedQuote { at });
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

impl Cmdline {
    /// Parses a command line.
    pub fn parse(s: &str) -> Result<Self, CmdlineError> {
        let params = split_words(s)?
            .into_iter()
            .map(|w| match w.split_once('=') {
                Some((k, v)) => Param {
                    key: k.into(),
                    value: Some(v.into()),
                },
                None => Param {
                    key: w,
                    value: None,
                },
            })
            .collect();
        Ok(Cmdline { params })
    }

    /// The value of the last `key=value`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|p| p.key == key)
            .and_then(|p| p.value.as_deref())
    }

    /// Whether `key` appears, with or without a value.
    pub fn has(&self, key: &str) -> bool {
        self.params.iter().any(|p| p.key == key)
    }

    /// The value of `key` as a number (decimal, or hex with `0x`), with an optional size
    /// suffix `K`, `M` or `G` (binary multiples).
    pub fn get_size(&self, key: &str) -> Option<Result<u64, SizeError>> {
        self.get(key).map(parse_size)
    }
}

/// A number that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeError(pub String);

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a size (examples: 4096, 0x1000, 64K, 16M, 1G)",
            self.0
        )
    }
}

/// Parses `123`, `0x7b`, `64K`, `16M`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let err = || SizeError(s.into());
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    }
    .map_err(|_| err())?;
    n.checked_mul(mult).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quotes_and_values() {
        let c =
            Cmdline::parse("  console=ttyAMA0  loglevel=4 quiet init=\"/my init.rc\" x= ").unwrap();
        assert_eq!(c.get("console"), Some("ttyAMA0"));
        assert_eq!(c.get("loglevel"), Some("4"));
        assert!(c.has("quiet"));
        assert_eq!(c.get("quiet"), None);
        assert_eq!(c.get("init"), Some("/my init.rc"));
        assert_eq!(c.get("x"), Some(""));
        assert_eq!(Cmdline::parse("").unwrap().params.len(), 0);
    }

    #[test]
    fn last_value_wins() {
        assert_eq!(Cmdline::parse("a=1 a=2").unwrap().get("a"), Some("2"));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert_eq!(
            Cmdline::parse("a=\"b c"),
            Err(CmdlineError::UnterminatedQuote { at: 2 })
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }
}
