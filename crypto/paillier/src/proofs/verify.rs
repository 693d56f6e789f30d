//! The verifier's side of the input proofs (feature `aggregator`): parsing
//! untrusted payloads, and checking many reports' equations at once with a
//! random linear combination and one multi-exponentiation, split across the
//! rayon pool and bisected when a batch fails.

use hetally_protocol::codec::{CodecError, Reader};
use hetally_protocol::ReportContext;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use super::multiexp::{multi_exp, Term};
use super::{
    challenge_modulus, BitProof, InputProofs, ProofError, CHALLENGE_BYTES, MAX_PAYLOAD,
    PROOF_VERSION, RESPONSE_BYTES,
};
use crate::arith::Int;
use crate::key::Ciphertext;

/// Proof that the buckets of a histogram sum to one.
struct SumProof<B: Int> {
    a: B,
    z: B,
}

/// A decoded, range-checked proof-carrying payload and its challenge.
pub(super) struct Parsed<B: Int> {
    cts: Vec<B>,
    bits: Vec<BitProof<B>>,
    sum: Option<SumProof<B>>,
    challenge: B,
}

/// Reads a fixed-length big-endian integer.
fn read_int<B: Int>(r: &mut Reader<'_>, len: usize, what: &'static str) -> Result<B, CodecError> {
    Ok(B::from_be_bytes(r.bytes(len, what)?))
}

impl<B: Int> InputProofs<B> {
    /// Decodes a payload, range- and unit-checks every group element, and
    /// computes the challenge.
    fn parse(&self, payload: &[u8], ctx: &ReportContext<'_>) -> Result<Parsed<B>, ProofError> {
        let mut r = Reader::new(payload);
        let version = r.u8("proof version")?;
        if version != PROOF_VERSION {
            return Err(CodecError::UnsupportedVersion { found: version }.into());
        }
        let got = r.count(MAX_PAYLOAD, "bit count")?;
        if got != self.bit_count {
            return Err(ProofError::WrongBitCount {
                measurement: self.measurement.to_string(),
                expected: self.bit_count,
                got,
            });
        }
        let len = self.pk.ciphertext_len();
        let n2 = self.pk.n_squared();
        let n = self.pk.n();
        // Every element must be in [1, n^2) and a unit: the product of all
        // of them mod n is a unit exactly when each is, so one gcd suffices.
        let mut units = B::from_u64(1);
        let mut element = |x: B, what: &'static str| -> Result<B, ProofError> {
            if x.is_zero() || &x >= n2 {
                return Err(ProofError::NotAUnit(what));
            }
            units.mul_mod_assign(&x.rem_euclid(n), n);
            Ok(x)
        };
        let mut cts = Vec::with_capacity(got);
        for _ in 0..got {
            cts.push(element(
                read_int(&mut r, len, "bit ciphertext")?,
                "ciphertext",
            )?);
        }
        let mut bits = Vec::with_capacity(got);
        for _ in 0..got {
            let a0 = element(read_int(&mut r, len, "commitment a0")?, "commitment")?;
            let a1 = element(read_int(&mut r, len, "commitment a1")?, "commitment")?;
            let e0 = read_int(&mut r, CHALLENGE_BYTES, "challenge share")?;
            let z0 = read_int(&mut r, RESPONSE_BYTES, "response z0")?;
            let z1 = read_int(&mut r, RESPONSE_BYTES, "response z1")?;
            bits.push(BitProof {
                a: [a0, a1],
                e0,
                z: [z0, z1],
            });
        }
        let sum = if self.measurement.is_one_hot() {
            let a = element(read_int(&mut r, len, "sum commitment")?, "sum commitment")?;
            let z = read_int(&mut r, RESPONSE_BYTES, "sum response")?;
            Some(SumProof { a, z })
        } else {
            None
        };
        r.finish("proof-carrying payload")?;
        if !units.gcd_is_one(n) {
            return Err(ProofError::NotAUnit("ciphertext or commitment"));
        }
        let challenge = self.challenge(ctx, &cts, &bits, sum.as_ref().map(|s| &s.a));
        Ok(Parsed {
            cts,
            bits,
            sum,
            challenge,
        })
    }

    /// Checks the verification equations of `reports` all at once, with
    /// fresh random exponents from `rng`: true if every report's equations
    /// hold (or, with probability at most 2^-64, if some do not).
    fn check_combined(&self, reports: &[&Parsed<B>], rng: &mut ChaCha20Rng) -> bool {
        let q: B = challenge_modulus();
        // H^x (1 + g n) = prod a^rho * prod c^E, accumulated over reports.
        let mut x = B::zero();
        let mut g = B::zero();
        let mut terms: Vec<Term<'_, B>> =
            Vec::with_capacity(reports.iter().map(|p| 3 * p.cts.len() + 1).sum::<usize>());
        for p in reports {
            let e = &p.challenge;
            let rho_sum = p.sum.as_ref().map(|_| B::from_u64(rng.gen::<u64>()));
            for (c, b) in p.cts.iter().zip(&p.bits) {
                let rho0 = B::from_u64(rng.gen::<u64>());
                let rho1 = B::from_u64(rng.gen::<u64>());
                let e1 = e.sub(&b.e0).rem_euclid(&q);
                x = x.add(&rho0.mul(&b.z[0])).add(&rho1.mul(&b.z[1]));
                let r1e1 = rho1.mul(&e1);
                let mut exp = rho0.mul(&b.e0).add(&r1e1);
                if let Some(rs) = &rho_sum {
                    exp = exp.add(&rs.mul(e));
                }
                g = g.add(&r1e1);
                terms.push((&b.a[0], rho0));
                terms.push((&b.a[1], rho1));
                terms.push((c, exp));
            }
            if let (Some(s), Some(rs)) = (&p.sum, rho_sum) {
                x = x.add(&rs.mul(&s.z));
                g = g.add(&rs.mul(e));
                terms.push((&s.a, rs));
            }
        }
        // H^x g^G = prod a^rho prod c^E.
        let (lhs, rhs) = rayon::join(
            || self.mul_mod(&self.h_pow(&x), &self.g_pow(&g)),
            || multi_exp(&terms, self.pk.n_squared()),
        );
        lhs == rhs
    }

    /// Indices of the reports in `set` whose equations hold: the whole set
    /// if the combined check passes, else the union over its halves.
    fn find_valid(&self, set: &[(usize, &Parsed<B>)], rng: &mut ChaCha20Rng) -> Vec<usize> {
        let reports: Vec<&Parsed<B>> = set.iter().map(|(_, p)| *p).collect();
        if self.check_combined(&reports, rng) {
            return set.iter().map(|(i, _)| *i).collect();
        }
        if set.len() == 1 {
            return Vec::new();
        }
        let (left, right) = set.split_at(set.len() / 2);
        let mut rng_left = ChaCha20Rng::from_seed(rng.gen());
        let mut rng_right = ChaCha20Rng::from_seed(rng.gen());
        let (mut a, b) = rayon::join(
            || self.find_valid(left, &mut rng_left),
            || self.find_valid(right, &mut rng_right),
        );
        a.extend(b);
        a
    }

    /// The value ciphertexts of an accepted report: prod_j c_j^(2^j) over
    /// each value's bits.
    fn values_of(&self, p: &Parsed<B>) -> Vec<Ciphertext<B>> {
        let width = self.measurement.value_bits() as usize;
        let n2 = self.pk.n_squared();
        p.cts
            .chunks(width)
            .map(|bits| {
                // Horner from the most significant bit: ((c_k)^2 c_{k-1})^2 ...
                let mut acc = bits[width - 1].clone();
                for c in bits[..width - 1].iter().rev() {
                    acc.square_mod_assign(n2);
                    acc.mul_mod_assign(c, n2);
                }
                Ciphertext::from_checked(acc)
            })
            .collect()
    }

    /// Verifies one proof-carrying payload for the report `ctx`; returns
    /// one ciphertext per measurement value.
    pub fn verify(
        &self,
        payload: &[u8],
        ctx: &ReportContext<'_>,
    ) -> Result<Vec<Ciphertext<B>>, ProofError> {
        self.verify_batch(&[(payload, *ctx)])
            .pop()
            .unwrap_or_else(|| {
                Err(ProofError::Invalid {
                    measurement: self.measurement.to_string(),
                })
            })
    }

    /// Verifies many payloads at once (random linear combination of all
    /// their equations, one multi-exponentiation, split across the rayon
    /// pool), with batch exponents from the operating system's RNG. Returns
    /// one result per input, in order: exactly the invalid ones fail.
    pub fn verify_batch(
        &self,
        reports: &[(&[u8], ReportContext<'_>)],
    ) -> Vec<Result<Vec<Ciphertext<B>>, ProofError>> {
        let mut rng = ChaCha20Rng::from_rng(rand::rngs::OsRng).unwrap_or_else(|_| {
            // OsRng failing is a broken system; fall back to thread_rng,
            // which is itself seeded from the OS and reseeds.
            ChaCha20Rng::from_seed(rand::thread_rng().gen())
        });
        self.verify_batch_with_rng(reports, &mut rng)
    }

    /// [`InputProofs::verify_batch`] with the batch exponents drawn from
    /// `rng`, for reproducible tests and benches. The RNG must be unknown
    /// to whoever made the reports.
    pub fn verify_batch_with_rng(
        &self,
        reports: &[(&[u8], ReportContext<'_>)],
        rng: &mut ChaCha20Rng,
    ) -> Vec<Result<Vec<Ciphertext<B>>, ProofError>> {
        let parsed: Vec<Result<Parsed<B>, ProofError>> = reports
            .par_iter()
            .map(|(payload, ctx)| self.parse(payload, ctx))
            .collect();
        let candidates: Vec<(usize, &Parsed<B>)> = parsed
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().ok().map(|p| (i, p)))
            .collect();
        let mut valid = vec![false; reports.len()];
        if !candidates.is_empty() {
            for i in self.find_valid(&candidates, rng) {
                valid[i] = true;
            }
        }
        parsed
            .into_par_iter()
            .zip(valid)
            .map(|(p, ok)| match p {
                Err(e) => Err(e),
                Ok(_) if !ok => Err(ProofError::Invalid {
                    measurement: self.measurement.to_string(),
                }),
                Ok(p) => Ok(self.values_of(&p)),
            })
            .collect()
    }
}
