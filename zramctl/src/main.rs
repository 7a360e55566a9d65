fn main() -> std::process::ExitCode {
    zramctl::app::main()
}
