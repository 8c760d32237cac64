//! `sluice admin`: topics, consumer groups and the cluster, through the
//! Kafka protocol, against any Kafka-compatible broker. Versions are
//! negotiated with ApiVersions; tables for people, `--json` for scripts;
//! a broker's error is shown by its Kafka name with a one-line explanation.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest,
    ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetFetchRequest, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;
use serde_json::{json, Value};

/// Largest answer read.
const MAX_RESPONSE: usize = 256 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// What `sluice admin` was asked.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Topics: list, create, describe, delete, alter-config.
    Topic {
        #[command(subcommand)]
        command: TopicCommand,
    },
    /// Consumer groups: list, describe (members, committed offsets, lag).
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// The cluster: id, controller and brokers.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

/// `sluice admin topic ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TopicCommand {
    /// Every topic with its partition count.
    List,
    /// Creates a topic.
    Create {
        /// Topic name.
        name: String,
        /// Partitions (-1: the broker's default).
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        /// A config override KEY=VALUE (repeatable).
        #[arg(long = "config")]
        configs: Vec<String>,
    },
    /// Partitions with their offsets, and the topic's config overrides.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Deletes a topic.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Sets (KEY=VALUE) or removes (--delete KEY) config overrides.
    AlterConfig {
        /// Topic name.
        name: String,
        /// KEY=VALUE to set.
        set: Vec<String>,
        /// A key to remove (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
}

/// `sluice admin group ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GroupCommand {
    /// Every group with its protocol type and state.
    List,
    /// State, members with their assignments, committed offsets and lag.
    Describe {
        /// Group id.
        group: String,
    },
}

/// `sluice admin cluster ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers.
    Info,
}

/// The flags of `sluice admin`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// A broker to talk to.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Runs one admin command and prints its answer.
pub fn run(args: &AdminArgs) -> Result<(), String> {
    let mut client = Client::connect(&args.bootstrap)?;
    let out = match &args.command {
        AdminCommand::Cluster {
            command: ClusterCommand::Info,
        } => cluster_info(&mut client)?,
        AdminCommand::Topic { command } => match command {
            TopicCommand::List => topic_list(&mut client)?,
            TopicCommand::Create {
                name,
                partitions,
                configs,
            } => topic_create(&mut client, name, *partitions, configs)?,
            TopicCommand::Describe { name } => topic_describe(&mut client, name)?,
            TopicCommand::Delete { name } => topic_delete(&mut client, name)?,
            TopicCommand::AlterConfig { name, set, delete } => {
                topic_alter(&mut client, name, set, delete)?
            }
        },
        AdminCommand::Group { command } => match command {
            GroupCommand::List => group_list(&mut client)?,
            GroupCommand::Describe { group } => {
                group_describe(&mut client, &args.bootstrap, group)?
            }
        },
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out.json).unwrap_or_default()
        );
    } else {
        print!("{}", out.text);
    }
    Ok(())
}

/// An answer: for people and for scripts.
struct Output {
    text: String,
    json: Value,
}

/// A broker's error code by name, with what it means.
pub fn explain(code: i16) -> String {
    let Some(e) = ResponseError::try_from_code(code) else {
        return "NONE".into();
    };
    let why = match e {
        ResponseError::UnknownTopicOrPartition => "no such topic or partition",
        ResponseError::TopicAlreadyExists => "a topic of that name exists already",
        ResponseError::InvalidPartitions => "the partition count is not allowed",
        ResponseError::InvalidReplicationFactor => "the replication factor is not allowed",
        ResponseError::InvalidConfig => "a config key or value is not accepted",
        ResponseError::InvalidTopicException => "the topic name is not valid",
        ResponseError::PolicyViolation => "the broker's policy refuses it",
        ResponseError::GroupIdNotFound => "no such group",
        ResponseError::NonEmptyGroup => "the group still has members",
        ResponseError::CoordinatorNotAvailable => {
            "the group coordinator is not available; try again"
        }
        ResponseError::NotCoordinator => "asked the wrong coordinator; try again",
        ResponseError::CoordinatorLoadInProgress => "the coordinator is loading; try again",
        ResponseError::TopicAuthorizationFailed
        | ResponseError::GroupAuthorizationFailed
        | ResponseError::ClusterAuthorizationFailed => "not authorized",
        ResponseError::UnsupportedVersion => "the broker does not speak this version",
        ResponseError::KafkaStorageError => "the broker's storage refused it (a full disk?)",
        _ => "see Kafka's list of error codes",
    };
    format!("{e} ({code}): {why}")
}

fn check(code: i16, message: Option<&StrBytes>, what: &str) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    let detail = message
        .filter(|m| !m.is_empty())
        .map_or(String::new(), |m| format!(" ({m})"));
    Err(format!("{what}: {}{detail}", explain(code)))
}

/// A blocking connection speaking the Kafka protocol.
pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    next_id: i32,
    /// The broker's version range of each API key.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Client {
    /// Connects to `addr` and asks which versions it speaks.
    pub fn connect(addr: &str) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
        stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
        let mut client = Client {
            stream,
            buf: BytesMut::new(),
            next_id: 1,
            versions: BTreeMap::new(),
        };
        let answer = client.call_at(0, &ApiVersionsRequest::default())?;
        check(answer.error_code, None, "ApiVersions")?;
        client.versions = answer
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(client)
    }

    /// The version to use of `R`: the highest both sides speak, at most
    /// `preferred`.
    fn version<R: Request>(&self, preferred: i16) -> Result<i16, String> {
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| format!("the broker does not implement API {}", R::KEY))?;
        let v = preferred.min(max).min(R::VERSIONS.max);
        if v < min.max(R::VERSIONS.min) {
            return Err(format!(
                "no common version of API {} (the broker speaks {min}..={max})",
                R::KEY
            ));
        }
        Ok(v)
    }

    /// Sends `request` at the best version up to `preferred`; returns the
    /// version used and the answer.
    fn call<R>(&mut self, preferred: i16, request: &R) -> Result<(i16, R::Response), String>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let version = self.version::<R>(preferred)?;
        Ok((version, self.call_at(version, request)?))
    }

    fn call_at<R>(&mut self, version: i16, request: &R) -> Result<R::Response, String>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let id = self.next_id;
        self.next_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("sluice-admin")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| request.encode(&mut body, version))
            .map_err(|e| format!("encoding API {} v{version}: {e}", R::KEY))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("sending: {e}"))?;
        let mut answer = self.read_frame()?;
        let header = ResponseHeader::decode(
            &mut answer,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(|e| format!("decoding an answer's header: {e}"))?;
        if header.correlation_id != id {
            return Err(format!(
                "answer to request {} where {id} was expected",
                header.correlation_id
            ));
        }
        R::Response::decode(&mut answer, version)
            .map_err(|e| format!("decoding the answer of API {} v{version}: {e}", R::KEY))
    }

    fn read_frame(&mut self) -> Result<bytes::Bytes, String> {
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            if let Some(frame) = sluice_protocol::frame::split(&mut self.buf, MAX_RESPONSE)
                .map_err(|e| format!("answer frame: {e:?}"))?
            {
                return Ok(frame);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the broker closed the connection".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("reading an answer: {e}")),
            }
        }
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Metadata of `topics` (every topic: `None`).
fn metadata(
    client: &mut Client,
    topics: Option<&[&str]>,
) -> Result<kafka_protocol::messages::MetadataResponse, String> {
    // Looking must never create (the field's default is true).
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(topics.map(|t| {
            t.iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(name(n))))
                .collect()
        }));
    Ok(client.call(12, &request)?.1)
}

fn cluster_info(client: &mut Client) -> Result<Output, String> {
    let m = metadata(client, Some(&[]))?;
    let cluster = m.cluster_id.as_ref().map_or("", |c| c.as_str()).to_string();
    let mut text = format!(
        "cluster id: {cluster}\ncontroller: {}\nbrokers:\n",
        m.controller_id.0
    );
    let mut brokers = Vec::new();
    for b in &m.brokers {
        text += &format!("  {}  {}:{}\n", b.node_id.0, b.host, b.port);
        brokers.push(json!({"id": b.node_id.0, "host": b.host.as_str(), "port": b.port}));
    }
    Ok(Output {
        text,
        json: json!({"cluster_id": cluster, "controller": m.controller_id.0, "brokers": brokers}),
    })
}

fn topic_list(client: &mut Client) -> Result<Output, String> {
    let m = metadata(client, None)?;
    let mut topics: Vec<(String, usize)> = m
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| Some((t.name.as_ref()?.to_string(), t.partitions.len())))
        .collect();
    topics.sort();
    let mut text = format!("{:<40} {:>10}\n", "TOPIC", "PARTITIONS");
    for (t, n) in &topics {
        text += &format!("{t:<40} {n:>10}\n");
    }
    let json = topics
        .iter()
        .map(|(t, n)| json!({"topic": t, "partitions": n}))
        .collect();
    Ok(Output {
        text,
        json: Value::Array(json),
    })
}

fn parse_config(kv: &str) -> Result<(String, String), String> {
    kv.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{kv}: not KEY=VALUE"))
}

fn topic_create(
    client: &mut Client,
    topic: &str,
    partitions: i32,
    configs: &[String],
) -> Result<Output, String> {
    let mut t = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(-1);
    for kv in configs {
        let (k, v) = parse_config(kv)?;
        t.configs.push(
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k))
                .with_value(Some(StrBytes::from_string(v))),
        );
    }
    let request = CreateTopicsRequest::default()
        .with_topics(vec![t])
        .with_timeout_ms(30_000);
    let (_, answer) = client.call(7, &request)?;
    let r = answer.topics.first().ok_or("no answer for the topic")?;
    check(
        r.error_code,
        r.error_message.as_ref(),
        &format!("creating {topic}"),
    )?;
    Ok(Output {
        text: format!("created {topic} ({} partitions)\n", r.num_partitions),
        json: json!({"created": topic, "partitions": r.num_partitions}),
    })
}

fn topic_delete(client: &mut Client, topic: &str) -> Result<Output, String> {
    let version = client.version::<DeleteTopicsRequest>(6)?;
    let mut request = DeleteTopicsRequest::default().with_timeout_ms(30_000);
    if version >= 6 {
        request.topics = vec![
            kafka_protocol::messages::delete_topics_request::DeleteTopicState::default()
                .with_name(Some(name(topic))),
        ];
    } else {
        request.topic_names = vec![name(topic)];
    }
    let answer = client.call_at(version, &request)?;
    let r = answer.responses.first().ok_or("no answer for the topic")?;
    check(
        r.error_code,
        r.error_message.as_ref(),
        &format!("deleting {topic}"),
    )?;
    Ok(Output {
        text: format!("deleted {topic}\n"),
        json: json!({"deleted": topic}),
    })
}

/// The latest (-1) or earliest (-2) offset of each partition of each topic.
fn offsets(
    client: &mut Client,
    partitions: &BTreeMap<String, Vec<i32>>,
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>, String> {
    let topics = partitions
        .iter()
        .map(|(t, ps)| {
            ListOffsetsTopic::default()
                .with_name(name(t))
                .with_partitions(
                    ps.iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )
        })
        .collect();
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    let (_, answer) = client.call(7, &request)?;
    let mut out = BTreeMap::new();
    for t in &answer.topics {
        for p in &t.partitions {
            if p.error_code == 0 {
                out.insert((t.name.to_string(), p.partition_index), p.offset);
            }
        }
    }
    Ok(out)
}

fn topic_describe(client: &mut Client, topic: &str) -> Result<Output, String> {
    let m = metadata(client, Some(&[topic]))?;
    let t = m.topics.first().ok_or("no answer for the topic")?;
    check(t.error_code, None, &format!("describing {topic}"))?;
    let ids: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    let wanted = BTreeMap::from([(topic.to_string(), ids.clone())]);
    let start = offsets(client, &wanted, -2)?;
    let end = offsets(client, &wanted, -1)?;
    let mut text = format!(
        "topic {topic}\n{:>9} {:>7} {:>12} {:>15}\n",
        "PARTITION", "LEADER", "LOG START", "HIGH WATERMARK"
    );
    let mut partitions = Vec::new();
    let mut sorted = t.partitions.clone();
    sorted.sort_by_key(|p| p.partition_index);
    for p in &sorted {
        let key = (topic.to_string(), p.partition_index);
        let (s, e) = (
            start.get(&key).copied().unwrap_or(-1),
            end.get(&key).copied().unwrap_or(-1),
        );
        text += &format!(
            "{:>9} {:>7} {s:>12} {e:>15}\n",
            p.partition_index, p.leader_id.0
        );
        partitions.push(json!({"partition": p.partition_index, "leader": p.leader_id.0, "log_start": s, "high_watermark": e}));
    }
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(None)]);
    let (_, answer) = client.call(4, &request)?;
    let mut overrides = serde_json::Map::new();
    if let Some(r) = answer.results.first() {
        check(
            r.error_code,
            r.error_message.as_ref(),
            &format!("configs of {topic}"),
        )?;
        text += "config overrides:\n";
        // A topic override: config source 1 (DYNAMIC_TOPIC_CONFIG).
        for c in r.configs.iter().filter(|c| c.config_source == 1) {
            let value = c.value.as_ref().map_or("", |v| v.as_str());
            text += &format!("  {}={value}\n", c.name);
            overrides.insert(c.name.to_string(), json!(value));
        }
    }
    Ok(Output {
        text,
        json: json!({"topic": topic, "partitions": partitions, "config_overrides": overrides}),
    })
}

fn topic_alter(
    client: &mut Client,
    topic: &str,
    set: &[String],
    delete: &[String],
) -> Result<Output, String> {
    let mut configs = Vec::new();
    for kv in set {
        let (k, v) = parse_config(kv)?;
        configs.push(
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(v))),
        );
    }
    for k in delete {
        configs.push(
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(1),
        );
    }
    if configs.is_empty() {
        return Err("nothing to change: give KEY=VALUE or --delete KEY".into());
    }
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(configs),
    ]);
    let (_, answer) = client.call(1, &request)?;
    let r = answer.responses.first().ok_or("no answer for the topic")?;
    check(
        r.error_code,
        r.error_message.as_ref(),
        &format!("altering {topic}"),
    )?;
    Ok(Output {
        text: format!("altered the configs of {topic}\n"),
        json: json!({"altered": topic}),
    })
}

fn group_list(client: &mut Client) -> Result<Output, String> {
    let (_, answer) = client.call(4, &ListGroupsRequest::default())?;
    check(answer.error_code, None, "listing groups")?;
    let mut groups: Vec<(String, String, String)> = answer
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.protocol_type.to_string(),
                g.group_state.to_string(),
            )
        })
        .collect();
    groups.sort();
    let mut text = format!("{:<40} {:<12} {}\n", "GROUP", "TYPE", "STATE");
    for (g, t, s) in &groups {
        text += &format!("{g:<40} {t:<12} {s}\n");
    }
    let json = groups
        .iter()
        .map(|(g, t, s)| json!({"group": g, "protocol_type": t, "state": s}))
        .collect();
    Ok(Output {
        text,
        json: Value::Array(json),
    })
}

fn group_describe(client: &mut Client, bootstrap: &str, group: &str) -> Result<Output, String> {
    // The group's coordinator (this broker, on one node).
    let version = client.version::<FindCoordinatorRequest>(3)?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let answer = client.call_at(version, &request)?;
    check(
        answer.error_code,
        answer.error_message.as_ref(),
        "finding the coordinator",
    )?;
    let coordinator = format!("{}:{}", answer.host, answer.port);
    let mut coord = match Client::connect(&coordinator) {
        Ok(c) => c,
        // An advertised address this host cannot reach: the bootstrap.
        Err(_) => Client::connect(bootstrap)?,
    };
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let (_, described) = coord.call(5, &request)?;
    let g = described.groups.first().ok_or("no answer for the group")?;
    check(g.error_code, None, &format!("describing {group}"))?;
    let mut text = format!(
        "group {group}: {} ({}), {} members\n",
        g.group_state,
        if g.protocol_type.is_empty() {
            "no protocol"
        } else {
            g.protocol_type.as_str()
        },
        g.members.len()
    );
    let mut members = Vec::new();
    for m in &g.members {
        text += &format!(
            "  member {} client {} host {}\n",
            m.member_id, m.client_id, m.client_host
        );
        members.push(json!({"member_id": m.member_id.as_str(), "client_id": m.client_id.as_str(), "host": m.client_host.as_str()}));
    }
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(None);
    let (_, fetched) = coord.call(7, &request)?;
    check(fetched.error_code, None, &format!("offsets of {group}"))?;
    let mut committed: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for t in &fetched.topics {
        for p in &t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                committed
                    .entry(t.name.to_string())
                    .or_default()
                    .push((p.partition_index, p.committed_offset));
            }
        }
    }
    let wanted: BTreeMap<String, Vec<i32>> = committed
        .iter()
        .map(|(t, ps)| (t.clone(), ps.iter().map(|(p, _)| *p).collect()))
        .collect();
    let end = offsets(client, &wanted, -1)?;
    text += &format!(
        "{:<30} {:>9} {:>12} {:>15} {:>8}\n",
        "TOPIC", "PARTITION", "COMMITTED", "HIGH WATERMARK", "LAG"
    );
    let mut rows = Vec::new();
    let mut total = 0;
    for (t, ps) in &committed {
        let mut ps = ps.clone();
        ps.sort();
        for (p, offset) in ps {
            let hw = end.get(&(t.clone(), p)).copied();
            let lag = hw.map(|h| (h - offset).max(0));
            total += lag.unwrap_or(0);
            let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            text += &format!(
                "{t:<30} {p:>9} {offset:>12} {:>15} {:>8}\n",
                show(hw),
                show(lag)
            );
            rows.push(json!({"topic": t, "partition": p, "committed": offset, "high_watermark": hw, "lag": lag}));
        }
    }
    text += &format!("total lag: {total}\n");
    Ok(Output {
        text,
        json: json!({"group": group, "state": g.group_state.as_str(), "members": members, "offsets": rows, "lag": total}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_shown_by_name_with_a_reason() {
        assert_eq!(explain(0), "NONE");
        assert_eq!(
            explain(36),
            "TopicAlreadyExists (36): a topic of that name exists already"
        );
        assert!(explain(-1).contains("(-1)"));
        assert!(parse_config("a=b=c").is_ok_and(|(k, v)| k == "a" && v == "b=c"));
        assert!(parse_config("nothing").is_err());
    }

    #[test]
    fn api_keys_are_those_of_kafka() {
        use kafka_protocol::messages::ApiKey;
        assert_eq!(ApiKey::Metadata as i16, MetadataRequest::KEY);
    }
}
