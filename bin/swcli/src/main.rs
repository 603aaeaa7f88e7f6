//! `swcli`: see the library for how a command runs.

fn main() {
    std::process::exit(swcli::main_with(std::env::args_os()));
}
