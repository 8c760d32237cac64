//! What the controller keeps on its shard: the lock that makes metadata
//! changes one at a time, and the block of producer ids it hands out.

use std::cell::RefCell;

use super::producer_ids::ProducerIdBlock;

/// The controller's state (used on the controller shard only).
pub struct ControllerState {
    /// Serialises metadata changes.
    pub lock: glommio::sync::Semaphore,
    /// Producer ids to hand out.
    pub producer_ids: RefCell<ProducerIdBlock>,
}

impl Default for ControllerState {
    fn default() -> Self {
        ControllerState {
            lock: glommio::sync::Semaphore::new(1),
            producer_ids: RefCell::default(),
        }
    }
}
