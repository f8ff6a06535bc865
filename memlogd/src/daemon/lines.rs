//! Splits a byte stream into lines, cutting lines longer than the limit.
//! Pure logic; the input module feeds it what `read` returned.

/// Per-input line state: the start of a line whose `\n` has not arrived yet.
///
/// A `\r` right before a `\n` is not part of the line (LinuxKit's memlogd
/// reads lines with Go's `bufio.Reader.ReadLine`, which drops `"\r\n"` as
/// it drops `"\n"`), and it does not count toward the maximum length. A
/// `\r` anywhere else, a lone final `\r` at end of input included, is kept.
#[derive(Debug, Default)]
pub struct LineSplitter {
    /// At most `max` bytes, or `max + 1` when `cr_held`.
    pending: Vec<u8>,
    /// `pending` holds `max` bytes and a `\r` that is dropped if `\n`
    /// comes next (the line then fits), and otherwise makes the line too
    /// long.
    cr_held: bool,
    /// A cut line was already emitted; drop bytes up to the next `\n`.
    discarding: bool,
}

impl LineSplitter {
    /// Feeds bytes read from the input. `emit(line, truncated)` is called for
    /// each line, without its `\n` (or `\r\n`). A line longer than `max` is
    /// emitted as soon as `max` bytes of it (and the byte after them, unless
    /// that is a `\r`) are known, marked truncated; the rest of it is dropped.
    pub fn feed(&mut self, data: &[u8], max: usize, mut emit: impl FnMut(&[u8], bool)) {
        let mut rest = data;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let mut seg = &rest[..i];
            rest = &rest[i + 1..];
            if self.discarding {
                self.discarding = false;
                continue;
            }
            if let [head @ .., b'\r'] = seg {
                seg = head;
            } else if seg.is_empty() && self.pending.last() == Some(&b'\r') {
                // The `\r` ended the previous read.
                self.pending.pop();
                self.cr_held = false;
            }
            if self.pending.is_empty() {
                if seg.len() > max {
                    emit(&seg[..max], true);
                } else {
                    emit(seg, false);
                }
            } else {
                // A held `\r` followed by more bytes: the line is too long.
                let mut cut = std::mem::take(&mut self.cr_held);
                self.pending.truncate(max);
                let room = max - self.pending.len();
                cut |= seg.len() > room;
                self.pending.extend_from_slice(&seg[..seg.len().min(room)]);
                emit(&self.pending, cut);
                self.pending.clear();
            }
        }
        if self.discarding || rest.is_empty() {
            return;
        }
        let total = self.pending.len() + rest.len();
        if total <= max {
            self.pending.extend_from_slice(rest);
        } else if total == max + 1 && !self.cr_held && rest.last() == Some(&b'\r') {
            // Exactly one byte too many, a `\r`: whether the line fits
            // depends on the next byte.
            self.pending.extend_from_slice(rest);
            self.cr_held = true;
        } else {
            self.pending.truncate(max);
            let room = max - self.pending.len();
            self.pending.extend_from_slice(&rest[..room]);
            emit(&self.pending, true);
            self.pending.clear();
            self.cr_held = false;
            self.discarding = true;
        }
    }

    /// At end of input: a last line without `\n` is still a line (a final
    /// `\r` is kept, as LinuxKit keeps it).
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if self.cr_held {
            // The held `\r` is part of the line, which is one byte too long.
            emit(&self.pending[..self.pending.len() - 1], true);
        } else if !self.pending.is_empty() {
            emit(&self.pending, false);
        }
        self.pending.clear();
        self.cr_held = false;
        self.discarding = false;
    }

    /// Bytes held for an unfinished line (at most `max + 1`).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], max: usize) -> Vec<(String, bool)> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, max, |l, t| {
                out.push((String::from_utf8_lossy(l).into_owned(), t))
            });
        }
        s.finish(|l, t| out.push((String::from_utf8_lossy(l).into_owned(), t)));
        out
    }

    fn lines(v: &[(&str, bool)]) -> Vec<(String, bool)> {
        v.iter().map(|(s, t)| (s.to_string(), *t)).collect()
    }

    #[test]
    fn splits_across_reads_and_keeps_partial_last_line() {
        assert_eq!(
            run(&[b"a\nbb", b"b\n", b"\nlast"], 100),
            lines(&[("a", false), ("bbb", false), ("", false), ("last", false)])
        );
    }

    #[test]
    fn cuts_long_lines_and_resyncs_at_next_newline() {
        assert_eq!(
            run(&[b"0123456789\nok\n"], 4),
            lines(&[("0123", true), ("ok", false)])
        );
        // The cut happens across reads too, and the tail is dropped.
        assert_eq!(
            run(&[b"01", b"2345", b"678", b"9\nnext"], 4),
            lines(&[("0123", true), ("next", false)])
        );
        // Exactly max bytes is not cut.
        assert_eq!(
            run(&[b"0123\n", b"01", b"23\n"], 4),
            lines(&[("0123", false), ("0123", false)])
        );
        // A cut line that never ends produces nothing more at EOF.
        assert_eq!(run(&[b"0123456789"], 4), lines(&[("0123", true)]));
    }

    /// What the splitter must make of a whole stream: lines split at `\n`,
    /// one `\r` before each `\n` dropped, each cut to `max`.
    fn model(stream: &[u8], max: usize) -> Vec<(String, bool)> {
        let mut parts: Vec<&[u8]> = stream.split(|&c| c == b'\n').collect();
        let last = parts.pop().filter(|l| !l.is_empty());
        let mut out = Vec::new();
        let mut push = |l: &[u8]| {
            let cut = l.len() > max;
            let l = &l[..l.len().min(max)];
            out.push((String::from_utf8_lossy(l).into_owned(), cut));
        };
        for l in parts {
            push(l.strip_suffix(b"\r").unwrap_or(l));
        }
        if let Some(l) = last {
            push(l);
        }
        out
    }

    #[test]
    fn cr_before_newline_is_dropped_and_not_counted() {
        assert_eq!(
            run(&[b"dos\r\nunix\n\r\n\r\r\nmid\rdle\n"], 100),
            lines(&[
                ("dos", false),
                ("unix", false),
                ("", false),
                ("\r", false),
                ("mid\rdle", false)
            ])
        );
        // A lone final `\r` at end of input is kept (as LinuxKit keeps it).
        assert_eq!(run(&[b"last\r"], 100), lines(&[("last\r", false)]));
        // Exactly max bytes and `\r\n` fits, even when the `\n` comes in
        // the next read; max bytes, `\r` and anything else is cut.
        assert_eq!(run(&[b"0123\r\n"], 4), lines(&[("0123", false)]));
        assert_eq!(
            run(&[b"0123\r", b"\nok\n"], 4),
            lines(&[("0123", false), ("ok", false)])
        );
        assert_eq!(run(&[b"0123", b"\r", b"\n"], 4), lines(&[("0123", false)]));
        assert_eq!(
            run(&[b"0123\r", b"x\nok\n"], 4),
            lines(&[("0123", true), ("ok", false)])
        );
        assert_eq!(run(&[b"0123\r", b"\r\n"], 4), lines(&[("0123", true)]));
        assert_eq!(run(&[b"0123\r"], 4), lines(&[("0123", true)]));
        assert_eq!(run(&[b"01234\r\n"], 4), lines(&[("0123", true)]));
        let mut s = LineSplitter::default();
        s.feed(b"0123\r", 4, |_, _| panic!("nothing is known yet"));
        assert_eq!(s.pending_len(), 5);
    }

    #[test]
    fn cr_handling_at_every_split_point() {
        let data = b"ab\r\n0123\r\n0123\rx\n\r\n\r\r\n012\r\r\nmid\rdle\n01234\r\nend\r";
        for max in [0, 1, 3, 4, 5, 8] {
            let want = model(data, max);
            assert_eq!(run(&[data], max), want, "max {max} whole");
            for i in 0..=data.len() {
                for j in i..=data.len() {
                    assert_eq!(
                        run(&[&data[..i], &data[i..j], &data[j..]], max),
                        want,
                        "max {max}, cut at {i} and {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let data = b"alpha\nbeta-is-long\n\ngamma\ndelta-very-long-line\nend";
        let want = run(&[data], 8);
        for cut in 0..data.len() {
            assert_eq!(run(&[&data[..cut], &data[cut..]], 8), want, "cut at {cut}");
        }
    }
}
