//! `keygen --scheme dap-hpke`: the collector's credential for DAP tasks
//! (the two-server Prio3 mode).
//!
//! Writes `DIR/collector-credential.json` (mode 0600): an X25519 /
//! HKDF-SHA256 / AES-128-GCM HPKE key pair and a fresh bearer token, in
//! the JSON format `janus_collector` reads (`PrivateCollectorCredential`),
//! so the same file serves `hetally-client dap collect` and Divvi Up's
//! collector tools. Also writes `DIR/collector-hpke-config.txt` (0644): the
//! public HPKE configuration, base64url of its DAP encoding, which is what a
//! DAP task is provisioned with.

use std::io::Write;
use std::path::{Path, PathBuf};

use hetally_dap::hpke::{encode_config, CollectorCredential};
use hetally_protocol::keyfile::{self, KeyFileError};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::cli::KeygenArgs;
use crate::error::KeytoolError;

/// The credential file's name in the output directory.
pub const CREDENTIAL_FILE: &str = "collector-credential.json";

/// The public HPKE configuration's file name.
pub const HPKE_CONFIG_FILE: &str = "collector-hpke-config.txt";

fn write_error(path: &Path, e: KeyFileError) -> KeytoolError {
    match e {
        KeyFileError::Exists(_) => KeytoolError::Exists {
            paths: path.display().to_string(),
            count: 1,
        },
        other => KeytoolError::Keygen(format!("{}: {other}", path.display())),
    }
}

/// Runs `keygen --scheme dap-hpke`.
pub fn run(args: &KeygenArgs, out: &mut dyn Write) -> Result<(), KeytoolError> {
    let cred_path: PathBuf = args.out.join(CREDENTIAL_FILE);
    let config_path: PathBuf = args.out.join(HPKE_CONFIG_FILE);
    let existing: Vec<&PathBuf> = [&cred_path, &config_path]
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    if !existing.is_empty() && !args.force {
        return Err(KeytoolError::Exists {
            paths: existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            count: existing.len(),
        });
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(&args.out)
        .map_err(|source| KeytoolError::CreateDir {
            path: args.out.display().to_string(),
            source,
        })?;
    let mut token = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut token);
    let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, token);
    let id = (rand::rngs::OsRng.next_u32() & 0xff) as u8;
    let cred = CollectorCredential::generate(id, token)
        .map_err(|e| KeytoolError::Keygen(e.to_string()))?;
    let config = cred
        .hpke_config()
        .map_err(|e| KeytoolError::Keygen(e.to_string()))?;
    let json = Zeroizing::new(cred.to_json());
    keyfile::write_private_file(&cred_path, json.as_bytes(), args.force)
        .map_err(|e| write_error(&cred_path, e))?;
    keyfile::write_public_file(
        &config_path,
        format!("{}\n", encode_config(&config)).as_bytes(),
        args.force,
    )
    .map_err(|e| write_error(&config_path, e))?;
    let w = KeytoolError::Output;
    writeln!(out, "Generated a DAP collector credential (HPKE X25519-HKDF-SHA256 / AES-128-GCM, config id {id}).").map_err(w)?;
    writeln!(
        out,
        "  credential   {} (mode 0600; janus_collector's JSON format)",
        cred_path.display()
    )
    .map_err(w)?;
    writeln!(out, "  hpke config  {}", config_path.display()).map_err(w)?;
    writeln!(out).map_err(w)?;
    writeln!(
        out,
        "The credential holds the HPKE private key and the collector token: keep it on the collector's machine."
    )
    .map_err(w)?;
    writeln!(
        out,
        "Provision DAP tasks with the hpke config file (hetally-client dap task-create --collector-credential ... reads both)."
    )
    .map_err(w)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::SchemeArg;

    #[test]
    fn writes_a_credential_janus_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let args = KeygenArgs {
            scheme: SchemeArg::DapHpke,
            bits: 2048,
            out: dir.path().join("k"),
            force: false,
            trustees: None,
            threshold: None,
            smudging_lambda: None,
        };
        let mut out = Vec::new();
        run(&args, &mut out).unwrap();
        let path = dir.path().join("k").join(CREDENTIAL_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let cred = CollectorCredential::from_json(&std::fs::read(&path).unwrap()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("k").join(HPKE_CONFIG_FILE)).unwrap();
        assert_eq!(text.trim(), encode_config(&cred.hpke_config().unwrap()));
        // A second run refuses to replace it.
        assert!(matches!(
            run(&args, &mut Vec::new()),
            Err(KeytoolError::Exists { .. })
        ));
    }
}
