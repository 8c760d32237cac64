//! InitProducerId: producer ids for idempotent producers, from the
//! controller's durable counter. Without a transactional id every call
//! gets a fresh id, as Kafka answers, also when it names an id and epoch
//! (KIP-360): the broker cannot tell the owner of an id from any other
//! client, and bumping the epoch of a named id would let anyone fence any
//! producer. Transactions are not supported: a transactional id is answered
//! as Kafka does while its transaction coordinator is unavailable.

use sluice_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use sluice_protocol::kafka_protocol::ResponseError;

use crate::context::RequestContext;
use crate::shard_id::ShardId;

/// Answers InitProducerId.
pub async fn handle(
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let refused = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    match &request.transactional_id {
        None => {}
        // Kafka refuses an empty transactional id as an invalid request.
        Some(id) if id.is_empty() => return refused(ResponseError::InvalidRequest.code()),
        Some(_) => return refused(ResponseError::CoordinatorNotAvailable.code()),
    }
    let allocated = ctx
        .shard
        .call(ShardId::CONTROLLER, |s| async move {
            let data_dir = s.config().data_dir.clone();
            s.controller().producer_ids.borrow_mut().allocate(&data_dir)
        })
        .await;
    match allocated {
        Some(Ok(id)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Some(Err(e)) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            refused(ResponseError::KafkaStorageError.code())
        }
        None => refused(ResponseError::KafkaStorageError.code()),
    }
}
