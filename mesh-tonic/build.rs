//! Compiles `proto/helloworld.proto` (used by the tests) with tonic-prost-build,
//! using the `protoc` shipped by the `protoc-bin-vendored` crate so no system
//! protobuf compiler is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_with_config(config, &["proto/helloworld.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/helloworld.proto");
    Ok(())
}
