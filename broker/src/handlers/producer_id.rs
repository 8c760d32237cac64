//! InitProducerId: producer ids for idempotent producers, from the
//! controller's durable counter; a producer that re-initialises with its id
//! and epoch (KIP-360) gets the epoch bumped. Transactions are not
//! supported: a transactional id is answered as Kafka does while its
//! transaction coordinator is unavailable.

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
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    if pid >= 0 && (0..i16::MAX - 1).contains(&epoch) {
        return InitProducerIdResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch + 1);
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
