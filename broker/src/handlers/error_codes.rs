//! The error codes an answer carries (top level, per topic, per partition,
//! per group), so the metrics can count errors by API and code
//! (`sluice_errors_total`) where every answer is encoded.

use kafka_protocol::messages::*;

/// An answer's error codes, zero ones included.
pub trait ErrorCodes {
    /// Calls `f` with each error code of the answer.
    fn each_error_code(&self, f: &mut dyn FnMut(i16));
}

macro_rules! error_codes {
    ($($ty:ty => |$r:ident, $f:ident| $body:block)*) => {
        $(
            impl ErrorCodes for $ty {
                fn each_error_code(&self, $f: &mut dyn FnMut(i16)) {
                    let $r = self;
                    $body
                }
            }
        )*
    };
}

error_codes! {
    ApiVersionsResponse => |r, f| { f(r.error_code) }
    SaslHandshakeResponse => |r, f| { f(r.error_code) }
    SaslAuthenticateResponse => |r, f| { f(r.error_code) }
    DescribeUserScramCredentialsResponse => |r, f| {
        f(r.error_code);
        r.results.iter().for_each(|u| f(u.error_code));
    }
    AlterUserScramCredentialsResponse => |r, f| { r.results.iter().for_each(|u| f(u.error_code)) }
    CreateAclsResponse => |r, f| { r.results.iter().for_each(|a| f(a.error_code)) }
    DescribeAclsResponse => |r, f| { f(r.error_code) }
    DeleteAclsResponse => |r, f| {
        for filter in &r.filter_results {
            f(filter.error_code);
            filter.matching_acls.iter().for_each(|a| f(a.error_code));
        }
    }
    MetadataResponse => |r, f| {
        f(r.error_code);
        for t in &r.topics {
            f(t.error_code);
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
    ProduceResponse => |r, f| {
        for t in &r.responses {
            t.partition_responses.iter().for_each(|p| f(p.error_code));
        }
    }
    FetchResponse => |r, f| {
        f(r.error_code);
        for t in &r.responses {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
    ListOffsetsResponse => |r, f| {
        for t in &r.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
    CreateTopicsResponse => |r, f| { r.topics.iter().for_each(|t| f(t.error_code)) }
    DeleteTopicsResponse => |r, f| { r.responses.iter().for_each(|t| f(t.error_code)) }
    CreatePartitionsResponse => |r, f| { r.results.iter().for_each(|t| f(t.error_code)) }
    DescribeConfigsResponse => |r, f| { r.results.iter().for_each(|t| f(t.error_code)) }
    AlterConfigsResponse => |r, f| { r.responses.iter().for_each(|t| f(t.error_code)) }
    IncrementalAlterConfigsResponse => |r, f| { r.responses.iter().for_each(|t| f(t.error_code)) }
    DescribeClusterResponse => |r, f| { f(r.error_code) }
    DeleteRecordsResponse => |r, f| {
        for t in &r.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
    DescribeLogDirsResponse => |r, f| {
        f(r.error_code);
        r.results.iter().for_each(|d| f(d.error_code));
    }
    InitProducerIdResponse => |r, f| { f(r.error_code) }
    FindCoordinatorResponse => |r, f| {
        f(r.error_code);
        r.coordinators.iter().for_each(|c| f(c.error_code));
    }
    JoinGroupResponse => |r, f| { f(r.error_code) }
    SyncGroupResponse => |r, f| { f(r.error_code) }
    HeartbeatResponse => |r, f| { f(r.error_code) }
    LeaveGroupResponse => |r, f| {
        f(r.error_code);
        r.members.iter().for_each(|m| f(m.error_code));
    }
    OffsetCommitResponse => |r, f| {
        for t in &r.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
    OffsetFetchResponse => |r, f| {
        f(r.error_code);
        for t in &r.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
        for g in &r.groups {
            f(g.error_code);
            for t in &g.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
    }
    OffsetDeleteResponse => |r, f| {
        f(r.error_code);
        for t in &r.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
    ListGroupsResponse => |r, f| { f(r.error_code) }
    DescribeGroupsResponse => |r, f| { r.groups.iter().for_each(|g| f(g.error_code)) }
    DeleteGroupsResponse => |r, f| { r.results.iter().for_each(|g| f(g.error_code)) }
    AddPartitionsToTxnResponse => |r, f| {
        f(r.error_code);
        for t in &r.results_by_topic_v3_and_below {
            t.results_by_partition.iter().for_each(|p| f(p.partition_error_code));
        }
    }
    AddOffsetsToTxnResponse => |r, f| { f(r.error_code) }
    EndTxnResponse => |r, f| { f(r.error_code) }
    TxnOffsetCommitResponse => |r, f| {
        for t in &r.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
    DescribeTransactionsResponse => |r, f| {
        r.transaction_states.iter().for_each(|t| f(t.error_code))
    }
    ListTransactionsResponse => |r, f| { f(r.error_code) }
    DescribeProducersResponse => |r, f| {
        for t in &r.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

    #[test]
    fn every_partition_error_is_seen() {
        let r = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_partition_responses(vec![
                PartitionProduceResponse::default().with_error_code(3),
                PartitionProduceResponse::default(),
                PartitionProduceResponse::default().with_error_code(56),
            ])]);
        let mut seen = Vec::new();
        r.each_error_code(&mut |c| seen.push(c));
        assert_eq!(seen, [3, 0, 56]);
    }
}
