//! The router: split work by owning shard, run the parts concurrently (the
//! local part in place, remote parts over the shards' channels) and merge
//! the results back in request order.

use std::rc::Rc;

use crate::error::BrokerError;
use crate::metadata::{Metadata, PartitionKey};
use crate::shard::Shard;
use crate::shard_id::ShardId;

/// Runs `work` on each owning shard with that shard's items, concurrently,
/// and returns one result per item in the order of `items`. Items whose
/// shard has stopped get `gone(item)`.
pub async fn scatter<I, R, F, Fut>(
    shard: &Rc<Shard>,
    items: Vec<(ShardId, I)>,
    work: F,
    gone: fn(&I) -> R,
) -> Vec<R>
where
    I: Send + Clone + 'static,
    R: Send + 'static,
    F: Fn(Rc<Shard>, Vec<I>) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = Vec<R>> + 'static,
{
    let count = items.len();
    let mut groups: Vec<(ShardId, Vec<usize>, Vec<I>)> = Vec::new();
    for (index, (owner, item)) in items.into_iter().enumerate() {
        match groups.iter_mut().find(|g| g.0 == owner) {
            Some(g) => {
                g.1.push(index);
                g.2.push(item);
            }
            None => groups.push((owner, vec![index], vec![item])),
        }
    }
    let mut tasks = Vec::with_capacity(groups.len());
    for (owner, indexes, group) in groups {
        let (shard, work) = (shard.clone(), work.clone());
        let fallback = group.clone();
        tasks.push((
            indexes,
            fallback,
            glommio::spawn_local(async move { shard.call(owner, move |s| work(s, group)).await })
                .detach(),
        ));
    }
    let mut slots: Vec<Option<R>> = (0..count).map(|_| None).collect();
    for (indexes, fallback, task) in tasks {
        let results = task.await.flatten();
        match results {
            Some(results) if results.len() == indexes.len() => {
                for (i, r) in indexes.into_iter().zip(results) {
                    slots[i] = Some(r);
                }
            }
            _ => {
                for (i, item) in indexes.into_iter().zip(&fallback) {
                    slots[i] = Some(gone(item));
                }
            }
        }
    }
    slots
        .into_iter()
        .map(|r| r.expect("every index belongs to exactly one group"))
        .collect()
}

/// One partition of a request: its place in the request, and either its
/// owning shard and work item, or the error it gets without reaching one.
pub struct Slot<I, E> {
    /// Index of the topic in the request.
    pub topic: usize,
    /// Partition index.
    pub partition: i32,
    /// Owner and item, or the error.
    pub target: Result<(ShardId, I), E>,
}

/// The slot of `partition` of the topic named `name` (the `topic`-th of
/// its request), carrying `item` to the partition's owner, or
/// UNKNOWN_TOPIC_OR_PARTITION.
pub fn partition_slot<V>(
    metadata: &Metadata,
    topic: usize,
    name: &str,
    partition: i32,
    item: V,
) -> Slot<(PartitionKey, V), BrokerError> {
    let target = metadata
        .topics
        .get(name)
        .and_then(|t| Some((t.owner(partition)?, PartitionKey::new(t.id, partition))))
        .map(|(owner, key)| (owner, (key, item)))
        .ok_or_else(|| BrokerError::UnknownTopicOrPartition("unknown partition".into()));
    Slot {
        topic,
        partition,
        target,
    }
}

/// [`partition_slot`] where the principal may (`allowed`) touch the
/// topic; TOPIC_AUTHORIZATION_FAILED where it may not.
pub fn allowed_slot<V>(
    allowed: bool,
    metadata: &Metadata,
    topic: usize,
    name: &str,
    partition: i32,
    item: V,
) -> Slot<(PartitionKey, V), BrokerError> {
    if !allowed {
        return Slot {
            topic,
            partition,
            target: Err(BrokerError::TopicAuthorizationFailed(format!(
                "not authorized for topic '{name}'"
            ))),
        };
    }
    partition_slot(metadata, topic, name, partition, item)
}

/// [`scatter`] over the routable slots; one result per slot, in order,
/// with the slot's own error where it had one.
pub async fn scatter_slots<I, R, E, F, Fut>(
    shard: &Rc<Shard>,
    slots: &[Slot<I, E>],
    work: F,
    gone: fn(&I) -> R,
) -> Vec<Result<R, E>>
where
    I: Send + Clone + 'static,
    R: Send + 'static,
    E: Clone,
    F: Fn(Rc<Shard>, Vec<I>) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = Vec<R>> + 'static,
{
    let items = slots
        .iter()
        .filter_map(|s| s.target.as_ref().ok().cloned())
        .collect();
    let mut results = scatter(shard, items, work, gone).await.into_iter();
    slots
        .iter()
        .map(|s| match &s.target {
            Ok(_) => Ok(results.next().expect("one result per routed slot")),
            Err(e) => Err(e.clone()),
        })
        .collect()
}
