//! The probe table against the built kernel object, without loading it (no privileges): every
//! program and map the daemon names exists under that name.
use monitor_common::map;

use super::{
    PROGRAMS,
    table::{Fallback, Probe, TABLE},
};

#[test]
fn every_program_and_map_the_daemon_names_is_in_the_object() {
    let object = aya_obj::Object::parse(PROGRAMS).expect("the built kernel object parses");
    // Every probe of every chain, fallbacks of fallbacks included.
    let mut probes: Vec<&Probe> = TABLE.iter().collect();
    let mut next = 0;
    while let Some(probe) = probes.get(next) {
        if let Fallback::Now(more) | Fallback::WhenNeeded(more) = probe.fallback {
            probes.extend(more);
        }
        next += 1;
    }
    assert!(probes.len() > 20, "the chains were not walked");
    for probe in probes {
        assert!(
            object.programs.contains_key(probe.program),
            "{} ({}) is not a program of the object",
            probe.program,
            probe.attach.hook()
        );
    }
    for name in [map::EVENTS, map::CRITICAL, map::WATCHED, map::COUNTERS] {
        assert!(
            object.maps.contains_key(name),
            "{name} is not a map of the object"
        );
    }
}

#[test]
fn required_probes_have_no_fallback_and_optional_ones_say_what_is_lost() {
    for probe in TABLE {
        assert!(!probe.without.is_empty(), "{}", probe.attach.hook());
        if probe.required {
            assert!(
                matches!(probe.fallback, Fallback::None),
                "{}",
                probe.attach.hook()
            );
        }
    }
}
