//! Compiles the canonical gRPC helloworld proto (kept in mesh-tonic) for the
//! `greeter-server` and `greeter-client` examples, with the `protoc` shipped
//! by `protoc-bin-vendored`: no system protobuf compiler needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_with_config(
            config,
            &["../mesh-tonic/proto/helloworld.proto"],
            &["../mesh-tonic/proto"],
        )?;
    println!("cargo:rerun-if-changed=../mesh-tonic/proto/helloworld.proto");
    Ok(())
}
