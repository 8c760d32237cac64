//! Request `index` of run `seed`: which API and version (every supported
//! pair once per cycle, in a shuffled order), which mutations, and the
//! frame bytes. Depends only on (seed, index) and the run's context, so any
//! request can be replayed alone.

use kafka_protocol::messages::ApiKey;
use sluice_protocol::versions::SUPPORTED_APIS;

use crate::context::Context;
use crate::mutate::{self, Hostile};
use crate::requests;
use crate::rng::{mix, Rng};

/// Correlation id of the liveness probe that follows each request; fuzzed
/// requests never use it.
pub const PROBE_CORRELATION: i32 = 0x3EED_0001;

/// Every (api, version) the broker advertises.
pub fn pairs() -> Vec<(ApiKey, i16)> {
    SUPPORTED_APIS
        .iter()
        .flat_map(|r| (r.min..=r.max).map(move |v| (r.api_key, v)))
        .collect()
}

/// One generated request.
#[derive(Debug, Clone)]
pub struct Generated {
    pub index: u64,
    pub api: ApiKey,
    pub version: i16,
    pub frame: Vec<u8>,
    pub correlation_id: i32,
    pub classes: Vec<String>,
    /// The header names `api` at `version` with a body of that version:
    /// the request counts for coverage and its answer must decode.
    pub header_ok: bool,
    /// No byte, header or frame damage (field mutation may be there).
    pub well_formed: bool,
    /// A hostile header or frame, if any.
    pub hostile: Option<Hostile>,
    /// The broker owes no answer (Produce acks=0).
    pub no_answer: bool,
    pub fields_mutated: bool,
    pub bytes_mutated: bool,
    /// The group of a JoinGroup, to remember the member id it answers.
    pub join_group: Option<String>,
}

fn skipped(skip: &[String], class: &str) -> bool {
    skip.iter().any(|s| class.starts_with(s.as_str()))
}

/// The (api, version) of request `index`: cycle `index / n` visits all `n`
/// pairs in an order shuffled by the seed.
pub fn pair_of(seed: u64, index: u64, pairs: &[(ApiKey, i16)]) -> (ApiKey, i16) {
    let n = pairs.len() as u64;
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    let mut rng = Rng::new(mix(seed) ^ mix(index / n));
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    pairs[order[(index % n) as usize]]
}

pub fn generate(
    seed: u64,
    index: u64,
    pairs: &[(ApiKey, i16)],
    cx: &Context,
    skip: &[String],
    donor: &[u8],
) -> Generated {
    let (api, version) = pair_of(seed, index, pairs);
    let mut rng = Rng::for_request(seed, index);
    // 15% valid, 35% field-mutated, 35% byte-mutated, 15% both.
    let mode = rng.below(100);
    let fields = (15..50).contains(&mode) || mode >= 85;
    let bytes = mode >= 50;
    let api_name = format!("{api:?}").to_lowercase();

    let (mut body, mut classes, no_answer, join_group) =
        match requests::build(api, version, cx, &mut rng, fields, skip, index) {
            Ok(b) => (b.bytes, b.classes, b.no_answer, b.join_group),
            // A builder bug: still send something, and say so.
            Err(e) => (
                Vec::new(),
                vec![format!("{api_name}.builder-error: {e}")],
                false,
                None,
            ),
        };
    let fields_mutated = !classes.is_empty();
    let mut bytes_mutated = false;
    if bytes && !skipped(skip, &format!("{api_name}.bytes")) {
        for op in mutate::body(&mut rng, &mut body, donor) {
            classes.push(format!("{api_name}.bytes-{op}"));
        }
        bytes_mutated = true;
    }

    let mut correlation_id = (index % 0x3000_0000) as i32;
    let hv = sluice_protocol::header::header_version(api as i16, version);
    let client_id: &[u8] = b"sluice-fuzz";
    let mut hostile = None;
    if rng.chance(6, 100) {
        let h = *rng.pick(&Hostile::ALL);
        if !skipped(skip, h.class()) {
            hostile = Some(h);
            classes.push(h.class().to_string());
        }
    }
    let range = sluice_protocol::versions::range(api as i16);
    let (min, max) = range.map_or((0, 0), |r| (r.min, r.max));
    let mut header_ok = true;
    let frame = match hostile {
        None => mutate::frame(
            &mutate::header(api as i16, version, correlation_id, Some(client_id), hv),
            &body,
        ),
        Some(Hostile::ApiKey) => {
            header_ok = false;
            let key = *rng.pick(&[-1, i16::MIN, i16::MAX, 4, 21, 24, 67, 1000]);
            mutate::frame(
                &mutate::header(key, version, correlation_id, Some(client_id), 1),
                &body,
            )
        }
        Some(Hostile::Version) => {
            header_ok = false;
            let v = *rng.pick(&[min - 1, max + 1, -1, i16::MAX, i16::MIN]);
            let hv = sluice_protocol::header::header_version(api as i16, v);
            mutate::frame(
                &mutate::header(api as i16, v, correlation_id, Some(client_id), hv),
                &body,
            )
        }
        Some(Hostile::VersionMismatch) => {
            header_ok = false;
            let v = rng.between(min as i64, max as i64) as i16;
            let hv = sluice_protocol::header::header_version(api as i16, v);
            mutate::frame(
                &mutate::header(api as i16, v, correlation_id, Some(client_id), hv),
                &body,
            )
        }
        Some(Hostile::ClientId) => {
            header_ok = false;
            let mut h = mutate::header(api as i16, version, correlation_id, None, 0);
            if hv >= 1 {
                h.extend_from_slice(&mutate::hostile_client_id(&mut rng));
            }
            if hv >= 2 {
                h.push(0);
            }
            mutate::frame(&h, &body)
        }
        Some(Hostile::Tagged) => {
            header_ok = false;
            let mut h = mutate::header(api as i16, version, correlation_id, Some(client_id), 1);
            // Tagged fields: a count, then (tag, size, bytes) that may lie.
            let mut tags = vec![0u8; 1 + rng.below(8) as usize];
            rng.fill(&mut tags);
            h.extend_from_slice(&tags);
            mutate::frame(&h, &body)
        }
        Some(Hostile::Truncated) => {
            header_ok = false;
            let h = mutate::header(api as i16, version, correlation_id, Some(client_id), hv);
            let cut = rng.below(h.len() as u64) as usize;
            mutate::frame(&h[..cut], &[])
        }
        Some(Hostile::Correlation) => {
            correlation_id = *rng.pick(&[i32::MIN, -1, 0, i32::MAX]);
            mutate::frame(
                &mutate::header(api as i16, version, correlation_id, Some(client_id), hv),
                &body,
            )
        }
        Some(h @ (Hostile::SizeShort | Hostile::SizeLong | Hostile::SizeBad)) => {
            header_ok = false;
            let mut f = mutate::frame(
                &mutate::header(api as i16, version, correlation_id, Some(client_id), hv),
                &body,
            );
            let real = (f.len() - 4) as i64;
            let size = match h {
                Hostile::SizeShort => rng.between(0, real - 1),
                Hostile::SizeLong => real + rng.between(1, 1000),
                _ => *rng.pick(&[-1, i32::MIN as i64, 0, i32::MAX as i64, (100 << 20) + 1]),
            };
            f[..4].copy_from_slice(&(size as i32).to_be_bytes());
            f
        }
    };
    let well_formed = !bytes_mutated && hostile.is_none_or(|h| h == Hostile::Correlation);
    Generated {
        index,
        api,
        version,
        frame,
        correlation_id,
        classes,
        header_ok,
        well_formed,
        hostile,
        no_answer,
        fields_mutated,
        bytes_mutated,
        join_group,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn one_cycle_covers_every_pair_and_generation_is_deterministic() {
        let pairs = pairs();
        // Every version of every API the broker advertises (201 today).
        let advertised: usize = sluice_protocol::versions::SUPPORTED_APIS
            .iter()
            .map(|r| (r.max - r.min + 1) as usize)
            .sum();
        assert_eq!(pairs.len(), advertised);
        assert_eq!(advertised, 201);
        let cx = Context::offline();
        let seen: BTreeSet<(i16, i16)> = (0..pairs.len() as u64)
            .map(|i| {
                let (a, v) = pair_of(5, i + pairs.len() as u64, &pairs);
                (a as i16, v)
            })
            .collect();
        assert_eq!(seen.len(), pairs.len());
        for i in 0..300 {
            let a = generate(5, i, &pairs, &cx, &[], b"donor");
            let b = generate(5, i, &pairs, &cx, &[], b"donor");
            assert_eq!(a.frame, b.frame);
            assert!(
                !a.classes.iter().any(|c| c.contains("builder-error")),
                "{:?}",
                a.classes
            );
        }
    }

    #[test]
    fn skipped_classes_are_never_generated() {
        let pairs = pairs();
        let cx = Context::offline();
        let skip = vec![
            "createpartitions.count-negative".to_string(),
            "frame-".to_string(),
        ];
        for i in 0..5000 {
            let g = generate(9, i, &pairs, &cx, &skip, b"");
            assert!(
                !g.classes
                    .iter()
                    .any(|c| skip.iter().any(|s| c.starts_with(s.as_str()))),
                "{:?}",
                g.classes
            );
        }
    }
}
