//! The command line: one `clap` derive struct per command.
//!
//! Extension points, for the issues that follow:
//! * the TFHE issue adds a variant to [`SchemeArg`] (and its own key-size
//!   options next to `--bits`, which only Paillier uses);
//! * the DP issue adds `--clamp` and `--plot OUT.svg` to [`DecryptArgs`],
//!   95% intervals to the rendered output ([`crate::render`]), and a
//!   `dp-plan` variant to [`Command`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hetally_crypto::keyfile::Scheme;
use hetally_crypto::paillier::{DEFAULT_MODULUS_BITS, SUPPORTED_MODULUS_BITS};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  internal failure (key generation failed)
  2  bad command line
  3  a file could not be read or written (missing, permissions, disk)
  4  a file is corrupt, truncated, not a hetally file, or its decrypted
     values are impossible
  5  a file is the wrong kind for its argument (e.g. a public key given as
     --key), or uses a scheme or format version this build does not know
  6  the secret key is not the one the aggregate was encrypted under
  7  keygen would overwrite existing key files (pass --force)

Example session:
  hetally-keytool keygen --scheme paillier --out ~/hetally-keys
  hetally-keytool pubkey ~/hetally-keys/collector.pk
  hetally-keytool inspect release.htly
  hetally-keytool decrypt --key ~/hetally-keys/collector.sk release.htly";

/// The collector's tool: make keys, inspect hetally files, decrypt released
/// aggregates offline.
#[derive(Debug, Parser)]
#[command(name = "hetally-keytool", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Make the collector's key pair: DIR/collector.sk and DIR/collector.pk.
    Keygen(KeygenArgs),
    /// Print the fingerprint of a public key (or of a secret key's public half).
    Pubkey(PubkeyArgs),
    /// Say what a hetally file holds, without decrypting anything.
    Inspect(InspectArgs),
    /// Decrypt a released aggregate with the collector's secret key.
    Decrypt(DecryptArgs),
}

/// Schemes `keygen` can make keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum SchemeArg {
    /// Paillier with g = n + 1 (the `paillier` backend).
    Paillier,
}

impl SchemeArg {
    /// The scheme in `hetally_crypto` terms.
    pub fn scheme(self) -> Scheme {
        match self {
            SchemeArg::Paillier => Scheme::Paillier,
        }
    }
}

/// Arguments of `keygen`.
#[derive(Debug, Args)]
#[command(after_help = "\
The secret key is written with mode 0600, atomically; a directory that does
not exist yet is created with mode 0700. Neither file is replaced unless
--force is given, and with --force the old secret key is gone: aggregates
released under it can no longer be decrypted.

Example:
  hetally-keytool keygen --scheme paillier --bits 3072 --out ~/hetally-keys")]
pub struct KeygenArgs {
    /// Homomorphic scheme of the key pair (the task's backend).
    #[arg(long, value_enum)]
    pub scheme: SchemeArg,

    /// Paillier modulus size in bits: 2048 or 3072.
    #[arg(long, default_value_t = DEFAULT_MODULUS_BITS, value_parser = parse_modulus_bits)]
    pub bits: u32,

    /// Directory to write collector.sk and collector.pk into (created if
    /// missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Replace existing collector.sk / collector.pk in DIR.
    #[arg(long)]
    pub force: bool,
}

fn parse_modulus_bits(s: &str) -> Result<u32, String> {
    let supported = || {
        SUPPORTED_MODULUS_BITS
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    match s.parse::<u32>() {
        Ok(bits) if SUPPORTED_MODULUS_BITS.contains(&bits) => Ok(bits),
        _ => Err(format!(
            "unsupported modulus size {s:?}: use {}",
            supported()
        )),
    }
}

/// Arguments of `pubkey`.
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the hex SHA-256 of the public key file, the fingerprint clients and
aggregates refer to. With --json:
  {\"scheme\":\"paillier\",\"n\":\"<decimal>\",\"fingerprint\":\"<hex>\",\"modulus_bits\":2048}

Examples:
  hetally-keytool pubkey ~/hetally-keys/collector.pk
  hetally-keytool pubkey --json ~/hetally-keys/collector.pk")]
pub struct PubkeyArgs {
    /// Public key file (collector.pk). A secret key file also works: its
    /// public half is shown.
    #[arg(value_name = "PK")]
    pub key: PathBuf,

    /// Print JSON instead of the bare fingerprint.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
#[command(after_help = "\
Works on public keys, secret keys (never showing secret material: the
fingerprint shown is that of the key's public half) and aggregates (task,
interval, report count, noise, slot layout, ciphertexts, key fingerprint).
The file is fully decoded, so a corrupt file is reported.

Examples:
  hetally-keytool inspect release.htly
  hetally-keytool inspect --json ~/hetally-keys/collector.sk")]
pub struct InspectArgs {
    /// Any hetally file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Output formats of `decrypt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum OutputFormat {
    /// Human-readable: a header, then one row per value.
    Table,
    /// One JSON object with the metadata and the values.
    Json,
    /// `index,value` lines after a header line.
    Csv,
}

/// Arguments of `decrypt`.
#[derive(Debug, Args)]
#[command(after_help = "\
The key's fingerprint must match the one the aggregate names. The values are
the batch's sums plus the DP noise the server added (none if the task has no
DP); histogram rows are labelled \"bucket i\". Task ids are base64url
without padding. JSON output:
  {\"task_id\":\"...\",\"measurement\":\"histogram:11\",\"report_count\":1000,
   \"batch\":{\"start\":1714521600,\"duration\":3600},\"dp\":\"none\",\"values\":[...]}

Examples:
  hetally-keytool decrypt --key ~/hetally-keys/collector.sk release.htly
  hetally-keytool decrypt --key collector.sk --format csv --out counts.csv release.htly

Exit codes are listed in `hetally-keytool --help`.")]
pub struct DecryptArgs {
    /// The collector's secret key file (collector.sk).
    #[arg(long, value_name = "SK")]
    pub key: PathBuf,

    /// The encrypted aggregate released by the server.
    #[arg(value_name = "AGG")]
    pub aggregate: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// Write the output to FILE (replacing it) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modulus_bits() {
        assert_eq!(parse_modulus_bits("2048"), Ok(2048));
        assert_eq!(parse_modulus_bits("3072"), Ok(3072));
        for bad in ["1024", "4096", "", "x", "-2048"] {
            let e = parse_modulus_bits(bad).unwrap_err();
            assert!(e.contains("2048 or 3072"), "{e}");
        }
    }

    #[test]
    fn parses_a_decrypt_command() {
        let cli = Cli::try_parse_from([
            "hetally-keytool",
            "decrypt",
            "--key",
            "k.sk",
            "--format",
            "csv",
            "agg.htly",
        ])
        .unwrap();
        let Command::Decrypt(args) = cli.command else {
            panic!("not decrypt")
        };
        assert_eq!(args.format, OutputFormat::Csv);
        assert_eq!(args.aggregate, PathBuf::from("agg.htly"));
        assert!(args.out.is_none());
    }
}
