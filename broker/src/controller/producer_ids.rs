//! Producer ids for idempotent producers, handed out by the controller
//! from blocks: the end of the current block is persisted before any id of
//! it is used, so no id is reused after a crash.

use std::path::Path;

use crate::error::BrokerError;
use crate::layout::{write_durably, PRODUCER_IDS_FILE};

/// The controller's block of producer ids.
#[derive(Debug, Default)]
pub struct ProducerIdBlock {
    next: i64,
    end: i64,
}

/// Ids per persisted block.
const ID_BLOCK: i64 = 1000;

impl ProducerIdBlock {
    /// A fresh producer id (blocking file I/O once per block).
    pub fn allocate(&mut self, data_dir: &Path) -> Result<i64, BrokerError> {
        if self.next >= self.end {
            let path = data_dir.join(PRODUCER_IDS_FILE);
            let start = match std::fs::read_to_string(&path) {
                Ok(text) => text
                    .trim()
                    .strip_prefix("next=")
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| {
                        BrokerError::Storage(format!("{} is damaged", path.display()))
                    })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => {
                    return Err(BrokerError::Storage(format!(
                        "reading {}: {e}",
                        path.display()
                    )))
                }
            }
            .max(self.end);
            let end = start + ID_BLOCK;
            write_durably(&path, format!("next={end}\n").as_bytes())
                .map_err(BrokerError::Storage)?;
            self.next = start;
            self.end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_ids_are_never_reused_across_restarts() {
        let dir = std::env::temp_dir().join(format!("sluice-pids-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut a = ProducerIdBlock::default();
        let first: Vec<i64> = (0..3).map(|_| a.allocate(&dir).unwrap()).collect();
        assert_eq!(first, [0, 1, 2]);
        // A restart (fresh block) continues after the persisted block.
        let mut b = ProducerIdBlock::default();
        assert_eq!(b.allocate(&dir).unwrap(), ID_BLOCK);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
