//! Consumer-group APIs, one file per family: `membership` (FindCoordinator,
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup), `offsets` (OffsetCommit,
//! OffsetFetch, OffsetDelete) and `admin` (ListGroups, DescribeGroups,
//! DeleteGroups).
//!
//! Each request for a group runs on the group's coordinator shard
//! (`groups::coordinator_shard`) through `Shard::call`, as one call of the
//! shard's `GroupService`: owned request data goes in, an owned result
//! comes out. These files translate Kafka messages and map errors to codes.

pub mod admin;
pub mod membership;
pub mod offsets;

use std::future::Future;
use std::rc::Rc;

use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::error::BrokerError;
use crate::groups::coordinator_shard;
use crate::shard::Shard;

/// Group ids are stored with a 15-bit length.
const MAX_GROUP_ID: usize = i16::MAX as usize;

/// Longest name a group keeps (protocol type and names, member and
/// instance ids): a flexible request may carry longer ones, but the
/// non-flexible answers of ListGroups and DescribeGroups must encode them
/// with a 15-bit length, or one member would break them for every client.
const MAX_GROUP_NAME: usize = i16::MAX as usize;

fn text(s: &StrBytes) -> String {
    s.to_string()
}

fn opt_text(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(text)
}

fn not_coordinator() -> i16 {
    BrokerError::NotCoordinator.code()
}

/// Runs `f` on the coordinator shard of `group`; `None` if it has stopped.
async fn on_coordinator<R, F, Fut>(shard: &Rc<Shard>, group: &str, f: F) -> Option<R>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    shard.call(coordinator_shard(group, shard.count()), f).await
}
