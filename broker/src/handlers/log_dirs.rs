//! DescribeLogDirs: the one log directory (the data directory), its total
//! and usable bytes, and the size of each partition asked (every partition
//! when the request names none), read on the partition's owner. A
//! partition's size is the bytes of the batches it still holds; they live
//! in its shard's WAL beside other partitions' batches.

use std::collections::BTreeSet;
use std::rc::Rc;

use sluice_protocol::kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use sluice_protocol::kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};

use crate::context::RequestContext;
use crate::log::PartitionKey;
use crate::metadata::str_bytes;
use crate::router::scatter;
use crate::shard::Shard;

/// Total and available bytes of the file system holding `dir`.
fn disk_space(dir: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a statvfs to fill.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as i64;
    Some((stat.f_blocks as i64 * block, stat.f_bavail as i64 * block))
}

/// Answers DescribeLogDirs.
pub async fn handle(
    ctx: &RequestContext,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let shard = &ctx.shard;
    if !ctx.allows_cluster(crate::authorizer::op::DESCRIBE) {
        // v3+ carries the code; older versions answer no directories.
        return DescribeLogDirsResponse::default().with_error_code(
            sluice_protocol::kafka_protocol::ResponseError::ClusterAuthorizationFailed.code(),
        );
    }
    let metadata = shard.metadata();
    // (topic, partition) once each, in name order, known ones only.
    let mut asked: BTreeSet<(String, i32)> = BTreeSet::new();
    match &request.topics {
        None => {
            for t in metadata.topics.values() {
                asked.extend((0..t.partitions.len() as i32).map(|p| (t.name.clone(), p)));
            }
        }
        Some(topics) => {
            for t in topics {
                if let Some(topic) = metadata.topics.get(t.topic.0.as_str()) {
                    asked.extend(
                        t.partitions
                            .iter()
                            .filter(|p| topic.owner(**p).is_some())
                            .map(|p| (topic.name.clone(), *p)),
                    );
                }
            }
        }
    }
    let items: Vec<_> = asked
        .iter()
        .filter_map(|(name, p)| {
            let topic = metadata.topics.get(name)?;
            Some((topic.owner(*p)?, PartitionKey::new(topic.id, *p)))
        })
        .collect();
    let sizes = scatter(
        shard,
        items,
        |s: Rc<Shard>, keys: Vec<PartitionKey>| async move {
            keys.iter()
                .map(|k| s.log().offsets(k).map_or(0, |o| o.bytes as i64))
                .collect()
        },
        |_| 0,
    )
    .await;
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for ((name, partition), size) in asked.iter().zip(sizes) {
        if topics.last().is_none_or(|t| t.name.0.as_str() != name) {
            topics.push(DescribeLogDirsTopic::default().with_name(TopicName(str_bytes(name))));
        }
        let t = topics.last_mut().expect("pushed above");
        t.partitions.push(
            DescribeLogDirsPartition::default()
                .with_partition_index(*partition)
                .with_partition_size(size),
        );
    }
    let dir = std::path::absolute(&shard.config().data_dir)
        .unwrap_or_else(|_| shard.config().data_dir.clone());
    let (total, usable) = disk_space(&dir).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(&dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![result])
}
