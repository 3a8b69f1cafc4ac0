//! Every WGSL source parses and validates with naga, so a typo fails here
//! with a line number instead of deep inside a pipeline build.

#[test]
fn every_shader_parses_and_validates() {
    let sources = wgtrain::gpu::shader_sources();
    assert!(sources.len() >= 4);
    for (name, source) in sources {
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(&source)));
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        validator
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}.wgsl failed validation: {e:?}"));
        assert!(
            !module.entry_points.is_empty(),
            "{name}.wgsl has no entry point"
        );
    }
}
