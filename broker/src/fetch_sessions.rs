//! Incremental fetch sessions (KIP-227): a consumer of many partitions
//! names them once; later fetches carry only the partitions whose fetch
//! position changed (and those to forget), and the answers only the
//! partitions with something new (records, a moved high watermark, last
//! stable offset or log start, an error).
//!
//! Sessions belong to the shard that serves the connection: a client's
//! connection stays on one shard, and a client that reconnects elsewhere
//! gets FETCH_SESSION_ID_NOT_FOUND and starts over with a full fetch, as
//! after a broker restart. A shard keeps at most `--max-incremental-fetch-
//! session-cache-slots` (split between the shards) sessions and a bounded
//! number of partitions in them; past either the least recently used
//! session goes.
//!
//! The rules of Kafka's `FetchSession`: epoch 0 with no session id opens
//! a session (a full fetch); epoch -1 is a sessionless full fetch and
//! closes the session named; a positive epoch continues the session and
//! must be the one after the last; anything else is refused.

use std::collections::HashMap;

use sluice_protocol::kafka_protocol::indexmap::IndexMap;
use sluice_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use sluice_protocol::kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use sluice_protocol::kafka_protocol::messages::{FetchRequest, TopicName};
use sluice_protocol::kafka_protocol::ResponseError;
use uuid::Uuid;

/// Kafka's epochs: open a session, and go without one.
const INITIAL_EPOCH: i32 = 0;
const FINAL_EPOCH: i32 = -1;

/// Most partitions all of a shard's sessions hold together.
const MAX_CACHED_PARTITIONS: usize = 200_000;

/// A partition of a session: the topic by id (v13+) or by name, as asked.
type PartitionId = (Uuid, TopicName, i32);

/// What a session remembers of a partition: how to read it, and what the
/// client was last told.
#[derive(Debug, Clone)]
struct Cached {
    fetch: FetchPartition,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start: i64,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    last_used: u64,
    partitions: IndexMap<PartitionId, Cached>,
}

/// How one Fetch relates to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// A full fetch without a session (answered with session id 0).
    Sessionless,
    /// A full fetch that opened session `id`: every partition answered.
    Opened(i32),
    /// A fetch continuing session `id`: only changed partitions answered.
    Incremental(i32),
}

impl Plan {
    /// The session id of the answer.
    pub fn session_id(self) -> i32 {
        match self {
            Plan::Sessionless => 0,
            Plan::Opened(id) | Plan::Incremental(id) => id,
        }
    }
}

/// One shard's fetch sessions.
#[derive(Debug)]
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    max_sessions: usize,
    cached_partitions: usize,
    next_id: i32,
    clock: u64,
}

impl FetchSessions {
    /// A cache of at most `max_sessions` sessions (0: sessions refused,
    /// every fetch is full); ids start at `first_id` (shards start apart).
    pub fn new(max_sessions: usize, first_id: i32) -> FetchSessions {
        FetchSessions {
            sessions: HashMap::new(),
            max_sessions,
            cached_partitions: 0,
            next_id: first_id.max(1),
            clock: 0,
        }
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Applies `request`'s session fields: opens, continues or closes a
    /// session, and for a continued one rewrites `request.topics` to every
    /// partition of the session (updated by the request, less the
    /// forgotten ones), so the fetch reads them all. An error is the code
    /// the whole answer carries.
    pub fn begin(&mut self, request: &mut FetchRequest) -> Result<Plan, i16> {
        self.clock += 1;
        let (id, epoch) = (request.session_id, request.session_epoch);
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if id != 0 {
                self.remove(id);
            }
            if epoch == FINAL_EPOCH || self.max_sessions == 0 {
                return Ok(Plan::Sessionless);
            }
            return Ok(self.open(&request.topics));
        }
        if id == 0 || epoch < 0 {
            return Err(ResponseError::InvalidFetchSessionEpoch.code());
        }
        let clock = self.clock;
        let Some(session) = self.sessions.get_mut(&id) else {
            return Err(ResponseError::FetchSessionIdNotFound.code());
        };
        if session.next_epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch.code());
        }
        session.next_epoch = next(epoch);
        session.last_used = clock;
        let before = session.partitions.len();
        for forgotten in &request.forgotten_topics_data {
            for p in &forgotten.partitions {
                let key = (forgotten.topic_id, forgotten.topic.clone(), *p);
                session.partitions.shift_remove(&key);
            }
        }
        for t in &request.topics {
            for p in &t.partitions {
                let key = (t.topic_id, t.topic.clone(), p.partition);
                match session.partitions.get_mut(&key) {
                    Some(cached) => cached.fetch = p.clone(),
                    None => {
                        session.partitions.insert(
                            key,
                            Cached {
                                fetch: p.clone(),
                                high_watermark: -1,
                                last_stable_offset: -1,
                                log_start: -1,
                            },
                        );
                    }
                }
            }
        }
        let after = session.partitions.len();
        request.topics = topics_of(&session.partitions);
        self.cached_partitions = (self.cached_partitions + after).saturating_sub(before);
        self.evict_over_limits(Some(id));
        Ok(Plan::Incremental(id))
    }

    /// Records what the answer told the client and, for a continued
    /// session, leaves out of `topics` the partitions with nothing new
    /// (and the topics left empty).
    pub fn finish(&mut self, plan: Plan, topics: &mut Vec<FetchableTopicResponse>) {
        let id = match plan {
            Plan::Sessionless => return,
            Plan::Opened(id) | Plan::Incremental(id) => id,
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let incremental = matches!(plan, Plan::Incremental(_));
        for topic in topics.iter_mut() {
            let name = topic.topic.clone();
            let topic_id = topic.topic_id;
            topic.partitions.retain(|p| {
                let key = (topic_id, name.clone(), p.partition_index);
                let Some(cached) = session.partitions.get_mut(&key) else {
                    return true;
                };
                let news = p.error_code != 0
                    || p.records.as_ref().is_some_and(|r| !r.is_empty())
                    || p.high_watermark != cached.high_watermark
                    || p.last_stable_offset != cached.last_stable_offset
                    || p.log_start_offset != cached.log_start;
                cached.high_watermark = p.high_watermark;
                cached.last_stable_offset = p.last_stable_offset;
                cached.log_start = p.log_start_offset;
                news || !incremental
            });
        }
        if incremental {
            topics.retain(|t| !t.partitions.is_empty());
        }
    }

    fn open(&mut self, topics: &[FetchTopic]) -> Plan {
        let mut partitions = IndexMap::new();
        for t in topics {
            for p in &t.partitions {
                partitions.insert(
                    (t.topic_id, t.topic.clone(), p.partition),
                    Cached {
                        fetch: p.clone(),
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start: -1,
                    },
                );
            }
        }
        if partitions.len() > MAX_CACHED_PARTITIONS {
            return Plan::Sessionless;
        }
        let id = self.fresh_id();
        self.cached_partitions += partitions.len();
        self.sessions.insert(
            id,
            Session {
                next_epoch: next(INITIAL_EPOCH),
                last_used: self.clock,
                partitions,
            },
        );
        self.evict_over_limits(Some(id));
        Plan::Opened(id)
    }

    fn fresh_id(&mut self) -> i32 {
        loop {
            let id = self.next_id;
            // Ids step by a large odd number so shards, starting apart,
            // do not collide soon, and never reach 0 or go negative.
            self.next_id = (self.next_id as i64 + 104_729).rem_euclid(i32::MAX as i64) as i32;
            if self.next_id == 0 {
                self.next_id = 1;
            }
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn remove(&mut self, id: i32) {
        if let Some(s) = self.sessions.remove(&id) {
            self.cached_partitions = self.cached_partitions.saturating_sub(s.partitions.len());
        }
    }

    /// Drops least recently used sessions (never `keep`) while over either
    /// limit.
    fn evict_over_limits(&mut self, keep: Option<i32>) {
        while self.sessions.len() > self.max_sessions
            || self.cached_partitions > MAX_CACHED_PARTITIONS
        {
            let oldest = self
                .sessions
                .iter()
                .filter(|(id, _)| Some(**id) != keep)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => self.remove(id),
                None => break,
            }
        }
    }
}

/// The epoch after `epoch` (wrapping to 1, never 0 or -1).
fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// The session's partitions as request topics, neighbours of one topic
/// together in one entry.
fn topics_of(partitions: &IndexMap<PartitionId, Cached>) -> Vec<FetchTopic> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for ((topic_id, name, _), cached) in partitions {
        match topics.last_mut() {
            Some(t) if t.topic_id == *topic_id && t.topic == *name => {
                t.partitions.push(cached.fetch.clone())
            }
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(name.clone())
                    .with_topic_id(*topic_id)
                    .with_partitions(vec![cached.fetch.clone()]),
            ),
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::kafka_protocol::messages::fetch_request::ForgottenTopic;
    use sluice_protocol::kafka_protocol::messages::fetch_response::PartitionData;
    use sluice_protocol::kafka_protocol::protocol::StrBytes;

    fn name(n: &str) -> TopicName {
        TopicName(StrBytes::from_string(n.into()))
    }

    fn request(id: i32, epoch: i32, parts: &[(&str, i32, i64)]) -> FetchRequest {
        let topics = parts
            .iter()
            .map(|(t, p, offset)| {
                FetchTopic::default()
                    .with_topic(name(t))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(*p)
                        .with_fetch_offset(*offset)])
            })
            .collect();
        FetchRequest::default()
            .with_session_id(id)
            .with_session_epoch(epoch)
            .with_topics(topics)
    }

    fn answer(req: &FetchRequest, hw: i64) -> Vec<FetchableTopicResponse> {
        req.topics
            .iter()
            .map(|t| {
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionData::default()
                                    .with_partition_index(p.partition)
                                    .with_high_watermark(hw)
                            })
                            .collect(),
                    )
            })
            .collect()
    }

    #[test]
    fn a_session_opens_continues_forgets_and_closes() {
        let mut cache = FetchSessions::new(4, 7);
        let mut first = request(0, 0, &[("a", 0, 0), ("a", 1, 0), ("b", 0, 5)]);
        let plan = cache.begin(&mut first).unwrap();
        let Plan::Opened(id) = plan else {
            panic!("{plan:?}")
        };
        let mut topics = answer(&first, 10);
        cache.finish(plan, &mut topics);
        assert_eq!(topics.iter().map(|t| t.partitions.len()).sum::<usize>(), 3);

        // Nothing sent, nothing changed: every partition read, none answered.
        let mut second = request(id, 1, &[]);
        let plan = cache.begin(&mut second).unwrap();
        assert_eq!(plan, Plan::Incremental(id));
        assert_eq!(
            second
                .topics
                .iter()
                .map(|t| t.partitions.len())
                .sum::<usize>(),
            3
        );
        let mut topics = answer(&second, 10);
        cache.finish(plan, &mut topics);
        assert!(topics.is_empty());

        // b/0 moves, a/1 is forgotten: b/0 answered, a/1 no longer read.
        let mut third = request(id, 2, &[("b", 0, 9)]);
        third.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(name("a"))
            .with_partitions(vec![1])];
        let plan = cache.begin(&mut third).unwrap();
        let read: Vec<(String, i32, i64)> = third
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.to_string(), p.partition, p.fetch_offset))
            })
            .collect();
        assert_eq!(read, [("a".into(), 0, 0), ("b".into(), 0, 9)]);
        let mut topics = answer(&third, 10);
        topics[1].partitions[0].high_watermark = 11;
        cache.finish(plan, &mut topics);
        assert_eq!(topics.len(), 1);
        assert_eq!(topics[0].topic, name("b"));

        // Wrong epoch, unknown id, a positive epoch without an id.
        assert_eq!(
            cache.begin(&mut request(id, 9, &[])),
            Err(ResponseError::InvalidFetchSessionEpoch.code())
        );
        assert_eq!(
            cache.begin(&mut request(id + 1, 1, &[])),
            Err(ResponseError::FetchSessionIdNotFound.code())
        );
        assert_eq!(
            cache.begin(&mut request(0, 3, &[])),
            Err(ResponseError::InvalidFetchSessionEpoch.code())
        );
        // Epoch -1 closes it.
        assert_eq!(
            cache.begin(&mut request(id, -1, &[])),
            Ok(Plan::Sessionless)
        );
        assert!(cache.is_empty());
        assert_eq!(cache.cached_partitions, 0);
    }

    #[test]
    fn the_least_recently_used_session_goes_when_full() {
        let mut cache = FetchSessions::new(2, 1);
        let ids: Vec<i32> = (0..3)
            .map(|_| {
                let mut r = request(0, 0, &[("a", 0, 0)]);
                cache.begin(&mut r).unwrap().session_id()
            })
            .collect();
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.begin(&mut request(ids[0], 1, &[])),
            Err(ResponseError::FetchSessionIdNotFound.code())
        );
        assert!(cache.begin(&mut request(ids[2], 1, &[])).is_ok());
        assert_eq!(cache.cached_partitions, 2);
    }
}
