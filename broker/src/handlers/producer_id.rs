//! InitProducerId: producer ids for idempotent producers, from the
//! controller's durable counter. Without a transactional id every call
//! gets a fresh id, as Kafka answers, also when it names an id and epoch
//! (KIP-360): the broker cannot tell the owner of an id from any other
//! client, and bumping the epoch of a named id would let anyone fence any
//! producer. With a transactional id the id's transaction coordinator
//! answers (`transactions::service`): the same producer id with a new
//! epoch, fencing older producers of the id.

use sluice_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};

use sluice_protocol::kafka_protocol::ResponseError;

use super::transactions::{code_for, may_write_txn, on_txn_coordinator, transactional_id};
use crate::authorizer::{op, resource};
use crate::context::RequestContext;
use crate::transactions::service::allocate_producer_id;

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
    let granted = |(id, epoch): (i64, i16)| {
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
    };
    let Some(id) = request.transactional_id.as_ref() else {
        // An idempotent producer needs IDEMPOTENT_WRITE on the cluster or
        // WRITE on some topic (KIP-679), as in Kafka.
        if !ctx.allows_cluster(op::IDEMPOTENT_WRITE) && !ctx.allows_any(op::WRITE, resource::TOPIC)
        {
            return refused(ResponseError::ClusterAuthorizationFailed.code());
        }
        return match allocate_producer_id(&ctx.shard).await {
            Ok(id) => granted((id, 0)),
            Err(e) => refused(e.code()),
        };
    };
    // Kafka refuses an empty transactional id as an invalid request.
    let id = match transactional_id(id).and_then(|id| may_write_txn(ctx, &id).map(|()| id)) {
        Ok(id) => id,
        Err(e) => return refused(e.code()),
    };
    let timeout_ms = request.transaction_timeout_ms;
    let expected =
        (request.producer_id.0 >= 0).then_some((request.producer_id.0, request.producer_epoch));
    let result = on_txn_coordinator(&ctx.shard, &id.clone(), move |s| async move {
        let svc = s.transactions().clone();
        svc.init_producer_id(&s, &id, timeout_ms, expected).await
    })
    .await;
    match result {
        Ok(granted_id) => granted(granted_id),
        Err(e) => refused(code_for(&e, ctx.version(), 4)),
    }
}
