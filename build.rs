//! Compiles `proto/` in pure Rust: `protox` parses the files (no system `protoc`, nothing
//! downloaded), `tonic-prost-build` generates the messages, clients and servers, and the
//! encoded descriptor set is written next to them for server reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "switchboard/notification/v1/notification_service.proto",
    "switchboard/conversation/v1/conversation_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build prints no rerun-if-changed lines; without these every build would
    // re-run codegen.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }

    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("switchboard_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // Malformed request bodies are the caller's error, not ours (see src/codec.rs).
        .codec_path("crate::codec::SwitchboardCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
