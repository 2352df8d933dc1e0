//! Per-node message sequence numbers, strictly increasing across restarts.
//! Blocks of numbers are reserved on disk ahead of use, so a crash skips
//! numbers but never reuses one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const BLOCK: u64 = 1000;

#[derive(Clone)]
pub struct SeqCounter(Arc<Mutex<State>>);

struct State {
    path: PathBuf,
    next: u64,
    reserved_until: u64,
}

impl SeqCounter {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let start = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        Ok(Self(Arc::new(Mutex::new(State {
            path: path.to_owned(),
            next: start,
            reserved_until: start - 1,
        }))))
    }

    pub fn next(&self) -> std::io::Result<u64> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if s.next > s.reserved_until {
            let until = s.next + BLOCK - 1;
            let tmp = s.path.with_extension("tmp");
            std::fs::write(&tmp, until.to_string())?;
            std::fs::rename(&tmp, &s.path)?;
            s.reserved_until = until;
        }
        let n = s.next;
        s.next += 1;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_reuses_after_restart() {
        let dir = std::env::temp_dir().join(format!("ritma-seq-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seq");
        let a = SeqCounter::open(&path).unwrap();
        let first: Vec<u64> = (0..5).map(|_| a.next().unwrap()).collect();
        assert_eq!(first, vec![1, 2, 3, 4, 5]);
        drop(a);
        let b = SeqCounter::open(&path).unwrap();
        assert!(b.next().unwrap() > 5);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
