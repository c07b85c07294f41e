//! Line editing for the serial shell: a state machine fed one byte at a time, writing its
//! echo to any `fmt::Write`. It speaks VT100/ANSI, which every serial terminal understands.
//!
//! Keys: printable characters insert at the cursor; Backspace (DEL or ^H) deletes before it;
//! ←/→ (and ^B/^F) move; Home/End (and ^A/^E); ^U kills to the start, ^K to the end, ^W the
//! word before the cursor; ↑/↓ walk the history; ^C abandons the line; Enter (CR, LF or CRLF)
//! finishes it.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

const HISTORY: usize = 32;

/// What a byte did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing to act on yet.
    None,
    /// A complete line (without the line terminator).
    Line(String),
    /// ^C: the line was abandoned.
    Cancel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    None,
    /// After ESC.
    Start,
    Csi,
    CsiNum(u8),
}

/// The editor's state: the line being typed, the cursor and the history.
#[derive(Debug)]
pub struct LineEditor {
    buf: Vec<char>,
    cursor: usize,
    esc: Esc,
    last_cr: bool,
    history: VecDeque<String>,
    hist_pos: Option<usize>,
    prompt: &'static str,
}

impl LineEditor {
    /// A new editor that redraws with `prompt` at the start of the line.
    pub fn new(prompt: &'static str) -> Self {
        LineEditor {
            buf: Vec::new(),
            cursor: 0,
            esc: Esc::None,
            last_cr: false,
            history: VecDeque::new(),
            hist_pos: None,
            prompt,
        }
    }

    /// The line typed so far.
    pub fn line(&self) -> String {
        self.buf.iter().collect()
    }

    /// Prints the prompt.
    pub fn prompt(&self, out: &mut impl Write) {
        let _ = out.write_str(self.prompt);
    }

    fn redraw(&self, out: &mut impl Write) {
        let _ = write!(out, "\r{}{}\x1b[K", self.prompt, self.line());
        let back = self.buf.len() - self.cursor;
        if back > 0 {
            let _ = write!(out, "\x1b[{back}D");
        }
    }

    fn set_line(&mut self, s: &str, out: &mut impl Write) {
        self.buf = s.chars().collect();
        self.cursor = self.buf.len();
        self.redraw(out);
    }

    fn finish(&mut self, out: &mut impl Write) -> Event {
        let _ = out.write_str("\r\n");
        let line = self.line();
        self.buf.clear();
        self.cursor = 0;
        self.hist_pos = None;
        if !line.trim().is_empty() && self.history.back() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(line.clone());
        }
        Event::Line(line)
    }

    /// Feeds one byte from the terminal.
    pub fn feed(&mut self, b: u8, out: &mut impl Write) -> Event {
        let was_cr = core::mem::replace(&mut self.last_cr, false);
        if self.esc != Esc::None {
            self.escape(b, out);
            return Event::None;
        }
        match b {
            b'\r' => {
                self.last_cr = true;
                return self.finish(out);
            }
            b'\n' if was_cr => {}
            b'\n' => return self.finish(out),
            0x1b => self.esc = Esc::Start,
            0x03 => {
                let _ = out.write_str("^C\r\n");
                self.buf.clear();
                self.cursor = 0;
                self.hist_pos = None;
                return Event::Cancel;
            }
            0x20..=0x7e => self.insert(b as char, out),
            _ => self.control(b, out),
        }
        Event::None
    }

    /// A byte of an escape sequence: cursor keys, Home/End, Delete.
    fn escape(&mut self, b: u8, out: &mut impl Write) {
        match core::mem::replace(&mut self.esc, Esc::None) {
            Esc::Start if b == b'[' || b == b'O' => self.esc = Esc::Csi,
            Esc::Csi => match b {
                b'A' => self.history_step(true, out),
                b'B' => self.history_step(false, out),
                b'C' => self.move_to(self.cursor + 1, out),
                b'D' => self.move_to(self.cursor.saturating_sub(1), out),
                b'H' => self.move_to(0, out),
                b'F' => self.move_to(self.buf.len(), out),
                b'0'..=b'9' => self.esc = Esc::CsiNum(b - b'0'),
                _ => {}
            },
            Esc::CsiNum(n) if b == b'~' => match n {
                1 | 7 => self.move_to(0, out),
                4 | 8 => self.move_to(self.buf.len(), out),
                3 if self.cursor < self.buf.len() => {
                    self.buf.remove(self.cursor);
                    self.redraw(out);
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// A printable character, at the cursor.
    fn insert(&mut self, c: char, out: &mut impl Write) {
        self.buf.insert(self.cursor, c);
        self.cursor += 1;
        if self.cursor == self.buf.len() {
            let _ = out.write_char(c);
        } else {
            self.redraw(out);
        }
    }

    /// An editing key: backspace, ^A ^E ^B ^F (moves), ^U ^K ^W (deletes).
    fn control(&mut self, b: u8, out: &mut impl Write) {
        match b {
            0x7f | 0x08 if self.cursor > 0 => {
                self.cursor -= 1;
                self.buf.remove(self.cursor);
                if self.cursor == self.buf.len() {
                    let _ = out.write_str("\x08 \x08");
                } else {
                    self.redraw(out);
                }
            }
            0x01 => self.move_to(0, out),
            0x05 => self.move_to(self.buf.len(), out),
            0x02 => self.move_to(self.cursor.saturating_sub(1), out),
            0x06 => self.move_to(self.cursor + 1, out),
            0x15 => {
                self.buf.drain(..self.cursor);
                self.cursor = 0;
                self.redraw(out);
            }
            0x0b => {
                self.buf.truncate(self.cursor);
                self.redraw(out);
            }
            0x17 => {
                let mut start = self.cursor;
                while start > 0 && self.buf[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && self.buf[start - 1] != ' ' {
                    start -= 1;
                }
                self.buf.drain(start..self.cursor);
                self.cursor = start;
                self.redraw(out);
            }
            _ => {}
        }
    }

    fn move_to(&mut self, pos: usize, out: &mut impl Write) {
        self.cursor = pos.min(self.buf.len());
        self.redraw(out);
    }

    fn history_step(&mut self, older: bool, out: &mut impl Write) {
        let n = self.history.len();
        if n == 0 {
            return;
        }
        self.hist_pos = match (self.hist_pos, older) {
            (None, true) => Some(n - 1),
            (None, false) => None,
            (Some(0), true) => Some(0),
            (Some(i), true) => Some(i - 1),
            (Some(i), false) if i + 1 < n => Some(i + 1),
            (Some(_), false) => None,
        };
        let line = match self.hist_pos {
            Some(i) => self.history[i].clone(),
            None => String::new(),
        };
        self.set_line(&line, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_bytes(ed: &mut LineEditor, bytes: &[u8]) -> Vec<Event> {
        let mut out = String::new();
        bytes
            .iter()
            .map(|&b| ed.feed(b, &mut out))
            .filter(|e| *e != Event::None)
            .collect()
    }

    #[test]
    fn plain_lines_and_crlf() {
        let mut ed = LineEditor::new("> ");
        assert_eq!(
            type_bytes(&mut ed, b"mem\r\nls\n"),
            [Event::Line("mem".into()), Event::Line("ls".into())]
        );
    }

    #[test]
    fn editing_keys() {
        let mut ed = LineEditor::new("> ");
        // "helo", left, insert 'l' -> "hello"; backspace at end; ^A, insert 'x'.
        let ev = type_bytes(&mut ed, b"helo\x1b[Dl\x1b[F\x7f\x01x\r");
        assert_eq!(ev, [Event::Line("xhell".into())]);
        let ev = type_bytes(&mut ed, b"cat /a /b\x17\x17/c\r");
        assert_eq!(ev, [Event::Line("cat /c".into())]);
        let ev = type_bytes(&mut ed, b"abc\x15def\r");
        assert_eq!(ev, [Event::Line("def".into())]);
        let ev = type_bytes(&mut ed, b"abc\x03");
        assert_eq!(ev, [Event::Cancel]);
    }

    #[test]
    fn history() {
        let mut ed = LineEditor::new("> ");
        type_bytes(&mut ed, b"one\rtwo\r");
        assert_eq!(
            type_bytes(&mut ed, b"\x1b[A\x1b[A\r"),
            [Event::Line("one".into())]
        );
        assert_eq!(
            type_bytes(&mut ed, b"\x1b[A\x1b[B\r"),
            [Event::Line("".into())]
        );
    }
}
