//! The disk spool: every outgoing message is appended here first and removed
//! only after JetStream acked it, so nothing is lost while the bus is
//! unreachable or the daemon restarts. Bounded: when full, the oldest
//! segment is dropped and its messages are counted (reported in heartbeats).
//!
//! Layout: `<dir>/<segment number>.jsonl`, one entry a line, plus `dropped`
//! (the drop counter) and `cursor` (entries of the head segment already sent).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use ritma_protocol::TelemetryKind;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpoolEntry {
    pub kind: TelemetryKind,
    pub seq: u64,
    pub body: String,
}

struct Segment {
    number: u64,
    entries: u64,
    bytes: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// Entries of the head segment already sent.
    cursor: u64,
    dropped: u64,
    tail: Option<File>,
}

fn io_context(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Spool {
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        fs::create_dir_all(dir).map_err(|e| io_context(dir, e))?;
        let mut numbers: Vec<u64> = fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".jsonl")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let mut segments = VecDeque::new();
        for number in numbers {
            let path = dir.join(format!("{number:012}.jsonl"));
            let text = fs::read_to_string(&path).map_err(|e| io_context(&path, e))?;
            // A torn last line (crash mid-write) is not an entry.
            let entries = text
                .lines()
                .filter(|l| serde_json::from_str::<SpoolEntry>(l).is_ok())
                .count() as u64;
            segments.push_back(Segment {
                number,
                entries,
                bytes: text.len() as u64,
            });
        }
        let read_u64 = |name: &str| -> u64 {
            fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        let cursor = read_u64("cursor").min(segments.front().map_or(0, |s| s.entries));
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes: max_bytes.max(4096),
            segment_bytes: (max_bytes / 8).clamp(4096, 4 << 20),
            segments,
            cursor,
            dropped: read_u64("dropped"),
            tail: None,
        })
    }

    fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:012}.jsonl"))
    }

    /// Entries waiting to be sent.
    pub fn depth(&self) -> u64 {
        self.segments.iter().map(|s| s.entries).sum::<u64>() - self.cursor
    }

    /// Entries dropped because the spool was full, ever.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    pub fn push(&mut self, entry: &SpoolEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
        line.push('\n');
        let needs_new = match self.segments.back() {
            None => true,
            Some(s) => s.bytes + line.len() as u64 > self.segment_bytes && s.entries > 0,
        };
        if needs_new || self.tail.is_none() {
            if needs_new {
                let number = self.segments.back().map_or(1, |s| s.number + 1);
                self.segments.push_back(Segment {
                    number,
                    entries: 0,
                    bytes: 0,
                });
            }
            let number = self.segments.back().map_or(1, |s| s.number);
            let path = self.path(number);
            self.tail = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| io_context(&path, e))?,
            );
        }
        if let Some(f) = self.tail.as_mut() {
            f.write_all(line.as_bytes())?;
        }
        if let Some(s) = self.segments.back_mut() {
            s.entries += 1;
            s.bytes += line.len() as u64;
        }
        self.enforce_bound()
    }

    /// Drop the oldest segments while over the bound (never the one being written).
    fn enforce_bound(&mut self) -> std::io::Result<()> {
        while self.bytes() > self.max_bytes && self.segments.len() > 1 {
            if let Some(head) = self.segments.pop_front() {
                self.dropped += head.entries - self.cursor;
                self.cursor = 0;
                let _ = fs::remove_file(self.path(head.number));
            }
            self.persist_counters()?;
        }
        Ok(())
    }

    /// Up to `n` of the oldest unsent entries, in order.
    pub fn peek(&self, n: usize) -> std::io::Result<Vec<SpoolEntry>> {
        let mut out = Vec::new();
        let mut skip = self.cursor;
        for seg in &self.segments {
            if out.len() >= n {
                break;
            }
            let path = self.path(seg.number);
            let file = File::open(&path).map_err(|e| io_context(&path, e))?;
            for line in BufReader::new(file).lines() {
                let line = line?;
                let Ok(entry) = serde_json::from_str::<SpoolEntry>(&line) else {
                    continue;
                };
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                out.push(entry);
                if out.len() >= n {
                    break;
                }
            }
            skip = 0;
        }
        Ok(out)
    }

    /// Mark the `n` oldest entries as sent, deleting finished segments.
    pub fn commit(&mut self, mut n: u64) -> std::io::Result<()> {
        while n > 0 {
            let Some(head) = self.segments.front() else {
                break;
            };
            let left = head.entries - self.cursor;
            if n < left {
                self.cursor += n;
                break;
            }
            n -= left;
            let number = head.number;
            self.segments.pop_front();
            self.cursor = 0;
            if self.segments.is_empty() {
                self.tail = None;
            }
            let _ = fs::remove_file(self.path(number));
        }
        self.persist_counters()
    }

    fn persist_counters(&self) -> std::io::Result<()> {
        fs::write(self.dir.join("cursor"), self.cursor.to_string())?;
        fs::write(self.dir.join("dropped"), self.dropped.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> SpoolEntry {
        SpoolEntry {
            kind: TelemetryKind::Heartbeat,
            seq,
            body: format!("{{\"n\":{seq}}}"),
        }
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("ritma-spool-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn keeps_order_across_reopen_and_commits() {
        let d = dir();
        let mut s = Spool::open(&d, 1 << 20).unwrap();
        for i in 1..=100 {
            s.push(&entry(i)).unwrap();
        }
        s.commit(30).unwrap();
        drop(s);
        let mut s = Spool::open(&d, 1 << 20).unwrap();
        assert_eq!(s.depth(), 70);
        let next: Vec<u64> = s.peek(5).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(next, vec![31, 32, 33, 34, 35]);
        s.commit(70).unwrap();
        assert_eq!(s.depth(), 0);
        s.push(&entry(101)).unwrap();
        assert_eq!(s.peek(10).unwrap()[0].seq, 101);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn bound_drops_oldest_and_counts_them() {
        let d = dir();
        let mut s = Spool::open(&d, 8192).unwrap();
        for i in 1..=1000 {
            s.push(&entry(i)).unwrap();
        }
        assert!(s.bytes() <= 8192 + 4096, "spool grew to {}", s.bytes());
        assert!(s.dropped() > 0);
        assert_eq!(
            s.dropped() + s.depth(),
            1000,
            "every message is either queued or counted as dropped"
        );
        let first = s.peek(1).unwrap()[0].seq;
        assert_eq!(
            first,
            s.dropped() + 1,
            "what is left is the newest, in order"
        );
        drop(s);
        let s = Spool::open(&d, 8192).unwrap();
        assert_eq!(s.dropped() + s.depth(), 1000);
        fs::remove_dir_all(d).unwrap();
    }
}
