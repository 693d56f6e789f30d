//! Helpers shared by hetally's benches.

use hetally_dp::DpMechanism;
use hetally_protocol::{Measurement, TaskDefinition};

/// A task of `measurement` under the public key file `public_key`, defined
/// as the server defines one (`hetally_schemes::define_task`), without a
/// budget's bound on releases.
pub fn task(
    public_key: &[u8],
    measurement: Measurement,
    dp: DpMechanism,
    max_batch_size: u64,
    input_proofs: bool,
) -> TaskDefinition {
    task_with_crs(public_key, measurement, dp, max_batch_size, input_proofs).0
}

/// [`task`], with the CRS a TFHE task with input proofs needs.
pub fn task_with_crs(
    public_key: &[u8],
    measurement: Measurement,
    dp: DpMechanism,
    max_batch_size: u64,
    input_proofs: bool,
) -> (TaskDefinition, Option<Vec<u8>>) {
    let budget = (dp != DpMechanism::None).then(|| "1000000".parse().expect("a number"));
    let params = hetally_schemes::TaskParams {
        measurement,
        min_batch_size: 1,
        max_batch_size: Some(max_batch_size),
        time_precision: 60,
        dp,
        budget,
        input_proofs,
        relation: Some(hetally_dp::Relation::ReplaceOne),
        trustee_noise: None,
    };
    hetally_schemes::define_task(
        public_key.to_vec(),
        params,
        max_batch_size,
        &mut rand::rngs::OsRng,
    )
    .expect("a valid bench task")
}
