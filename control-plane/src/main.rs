//! `meshctl`: the mesh's operator CLI (being built, issue "Foundation").

fn main() {
    eprintln!("meshctl: no subcommands yet");
    std::process::exit(2);
}
