//! Splits a byte stream into lines, cutting lines longer than the limit.
//! Pure logic; the input module feeds it what `read` returned.

/// Per-input line state: the start of a line whose `\n` has not arrived yet.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
    /// A cut line was already emitted; drop bytes up to the next `\n`.
    discarding: bool,
}

impl LineSplitter {
    /// Feeds bytes read from the input. `emit(line, truncated)` is called for
    /// each line, without its `\n`. A line longer than `max` is emitted as
    /// soon as `max` bytes of it are known, marked truncated; the rest of it
    /// is dropped.
    pub fn feed(&mut self, data: &[u8], max: usize, mut emit: impl FnMut(&[u8], bool)) {
        let mut rest = data;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let seg = &rest[..i];
            rest = &rest[i + 1..];
            if self.discarding {
                self.discarding = false;
            } else if self.pending.is_empty() {
                if seg.len() > max {
                    emit(&seg[..max], true);
                } else {
                    emit(seg, false);
                }
            } else {
                let room = max - self.pending.len();
                let cut = seg.len() > room;
                self.pending.extend_from_slice(&seg[..seg.len().min(room)]);
                emit(&self.pending, cut);
                self.pending.clear();
            }
        }
        if self.discarding || rest.is_empty() {
            return;
        }
        let room = max - self.pending.len();
        if rest.len() > room {
            self.pending.extend_from_slice(&rest[..room]);
            emit(&self.pending, true);
            self.pending.clear();
            self.discarding = true;
        } else {
            self.pending.extend_from_slice(rest);
        }
    }

    /// At end of input: a last line without `\n` is still a line.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, false);
        }
        self.pending.clear();
        self.discarding = false;
    }

    /// Bytes held for an unfinished line.
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

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let data = b"alpha\nbeta-is-long\n\ngamma\ndelta-very-long-line\nend";
        let want = run(&[data], 8);
        for cut in 0..data.len() {
            assert_eq!(run(&[&data[..cut], &data[cut..]], 8), want, "cut at {cut}");
        }
    }
}
