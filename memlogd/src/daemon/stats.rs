//! Counters: every refusal and every drop in the daemon is counted here and
//! can be read with an extended `stats` request.

/// What the daemon counted since it started.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Lines cut at -max-line-len.
    pub lines_truncated: u64,
    /// Input fds accepted over the daemon's life.
    pub inputs_total: u64,
    /// Input fds refused (limit reached, not a stream, cannot poll).
    pub inputs_refused: u64,
    /// Datagrams whose name exceeded -max-name-len (their fds are refused).
    pub names_refused: u64,
    /// Datagrams on the log socket that carried no fd.
    pub datagrams_without_fds: u64,
    /// Datagrams whose fds the kernel dropped (MSG_CTRUNC).
    pub fds_dropped: u64,
    /// Inputs closed on a read error.
    pub input_errors: u64,
    /// Query connections accepted over the daemon's life.
    pub readers_total: u64,
    /// Query connections refused at -max-readers or on a bad request.
    pub readers_refused: u64,
    /// Times a reader's socket and -reader-buffer were full (it stalls; writers do not).
    pub readers_blocked: u64,
    /// Records readers lost because the ring overwrote them first.
    pub reader_records_lost: u64,
    /// accept() failures (e.g. out of fds).
    pub accept_errors: u64,
    /// Records dropped by the per-source rate limit.
    pub rate_limited: u64,
    /// Kernel log records the kernel overwrote before memlogd read them.
    pub kmsg_lost: u64,
    /// Echo lines dropped because stdout was slow.
    pub echo_dropped: u64,
    /// memlogd's own messages dropped by its rate limit.
    pub selflog_suppressed: u64,
    /// Replies to bound senders on the log socket that could not be sent
    /// (the sender went away or does not read them).
    pub replies_failed: u64,
    /// Stream syslog connections closed at once: -max-syslog-conns reached.
    pub syslog_conns_refused: u64,
    /// Stream syslog connections closed after -syslog-idle-timeout.
    pub syslog_conns_idle_closed: u64,
    /// Docker-framed inputs: entries that did not decode, frames over the
    /// limit (skipped), lengths that lost the framing, frames cut by EOF.
    pub docker_frames_bad: u64,
    /// Docker-framed inputs: bytes dropped with those frames.
    pub docker_bytes_discarded: u64,
}

/// Live figures that are not counters.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    pub first: u64,
    pub next: u64,
    pub records: u64,
    pub evicted: u64,
    pub bytes_used: usize,
    pub buffer_size: usize,
    /// What the records held take uncompressed (`bytes_used` is what they
    /// take stored: the same for the raw ring).
    pub raw_bytes: usize,
    /// 1 if the ring is compressed (`-ring-compress`), else 0.
    pub ring_compressed: bool,
    /// Chunks the compressed ring kept as they were: its share of time for
    /// compressing was spent (a flood of writes).
    pub compress_skipped: u64,
    pub inputs: usize,
    pub readers: usize,
    /// Stream syslog connections open (part of `inputs`).
    pub syslog_conns: usize,
}

impl Counters {
    /// Every figure by name, in the order of the stats reply.
    pub fn pairs(&self, g: &Gauges) -> [(&'static str, u64); 34] {
        [
            ("first", g.first),
            ("next", g.next),
            ("records", g.records),
            ("evicted", g.evicted),
            ("bytes_used", g.bytes_used as u64),
            ("buffer_size", g.buffer_size as u64),
            ("raw_bytes", g.raw_bytes as u64),
            ("stored_bytes", g.bytes_used as u64),
            ("ring_compressed", u64::from(g.ring_compressed)),
            ("ring_chunks_uncompressed", g.compress_skipped),
            ("inputs", g.inputs as u64),
            ("readers", g.readers as u64),
            ("syslog_conns", g.syslog_conns as u64),
            ("lines_truncated", self.lines_truncated),
            ("inputs_total", self.inputs_total),
            ("inputs_refused", self.inputs_refused),
            ("names_refused", self.names_refused),
            ("datagrams_without_fds", self.datagrams_without_fds),
            ("fds_dropped", self.fds_dropped),
            ("input_errors", self.input_errors),
            ("readers_total", self.readers_total),
            ("readers_refused", self.readers_refused),
            ("readers_blocked", self.readers_blocked),
            ("reader_records_lost", self.reader_records_lost),
            ("accept_errors", self.accept_errors),
            ("rate_limited", self.rate_limited),
            ("kmsg_lost", self.kmsg_lost),
            ("echo_dropped", self.echo_dropped),
            ("selflog_suppressed", self.selflog_suppressed),
            ("replies_failed", self.replies_failed),
            ("syslog_conns_refused", self.syslog_conns_refused),
            ("syslog_conns_idle_closed", self.syslog_conns_idle_closed),
            ("docker_frames_bad", self.docker_frames_bad),
            ("docker_bytes_discarded", self.docker_bytes_discarded),
        ]
    }

    /// The figures as one line of `name=value` pairs (SIGUSR1's record).
    pub fn text(&self, g: &Gauges) -> String {
        let mut s = String::new();
        for (k, v) in self.pairs(g) {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(k);
            s.push('=');
            s.push_str(&v.to_string());
        }
        s
    }

    /// Appends the stats reply line.
    pub fn encode(&self, g: &Gauges, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!("{{\"memlog\":{},\"stats\":true", crate::proto::EXT_VERSION).as_bytes(),
        );
        for (k, v) in self.pairs(g) {
            out.extend_from_slice(format!(",\"{k}\":{v}").as_bytes());
        }
        out.extend_from_slice(b"}\n");
    }
}
