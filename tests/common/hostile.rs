//! Crafted MP4 files whose counts claim far more entries than their bytes hold, each one change
//! away from a small valid fragmented file. Made here, box by box, rather than kept as blobs.

/// A box: size, kind, then the parts of its body.
pub fn bx(kind: &[u8; 4], parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = 8 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut b = (len as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    for p in parts {
        b.extend_from_slice(p);
    }
    b
}

/// A full box: version and flags, then the body.
pub fn full(kind: &[u8; 4], version: u8, flags: u32, parts: &[&[u8]]) -> Vec<u8> {
    let mut vf = flags.to_be_bytes();
    vf[0] = version;
    let mut all: Vec<&[u8]> = vec![&vf];
    all.extend_from_slice(parts);
    bx(kind, &all)
}

fn be32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// What each crafted file changes in the valid one.
#[derive(Default, Clone)]
struct Parts {
    /// Boxes added inside the `hvc1` sample entry, after `hvcC`.
    in_entry: Vec<u8>,
    /// Boxes added to `stbl`, after the empty sample tables.
    in_stbl: Vec<u8>,
    /// Boxes added to `traf`, after `trun`.
    in_traf: Vec<u8>,
    /// Boxes added to `moov` after `mvex`.
    in_moov: Vec<u8>,
    stsd_count: Option<u32>,
    /// Replaces the `trun`.
    trun: Option<Vec<u8>>,
    /// Replaces the `mfra`; `None` writes a valid one.
    mfra: Option<Vec<u8>>,
    /// Extra `trak` boxes.
    traks: usize,
}

const COUNT: u32 = 0xFFFF_FFF0;

fn hvc1(extra: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; 6];
    e.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
    e.extend_from_slice(&[0; 16]);
    e.extend_from_slice(&320u16.to_be_bytes());
    e.extend_from_slice(&240u16.to_be_bytes());
    e.extend_from_slice(&be32s(&[0x0048_0000, 0x0048_0000, 0]));
    e.extend_from_slice(&1u16.to_be_bytes()); // frame count
    e.extend_from_slice(&[0; 32]); // compressor name
    e.extend_from_slice(&[0, 0x18, 0xFF, 0xFF]); // depth, pre_defined
    let mut hvcc = vec![1u8];
    hvcc.extend_from_slice(&[0; 21]);
    hvcc.push(0); // no parameter set arrays
    bx(b"hvc1", &[&e, &bx(b"hvcC", &[&hvcc]), extra])
}

fn trak(p: &Parts, id: u32) -> Vec<u8> {
    let tkhd = full(
        b"tkhd",
        0,
        3,
        &[
            &be32s(&[0, 0, id, 0, 0, 0, 0, 0, 0]),
            &[0; 36],
            &be32s(&[320 << 16, 240 << 16]),
        ],
    );
    let mdhd = full(b"mdhd", 0, 0, &[&be32s(&[0, 0, 90_000, 0, 0x55C4_0000])]);
    let hdlr = full(
        b"hdlr",
        0,
        0,
        &[&be32s(&[0]), b"vide", &[0; 12], b"video\0"],
    );
    let stsd = full(
        b"stsd",
        0,
        0,
        &[&be32s(&[p.stsd_count.unwrap_or(1)]), &hvc1(&p.in_entry)],
    );
    let stbl = bx(
        b"stbl",
        &[
            &stsd,
            &full(b"stts", 0, 0, &[&be32s(&[0])]),
            &full(b"stsc", 0, 0, &[&be32s(&[0])]),
            &full(b"stsz", 0, 0, &[&be32s(&[0, 0])]),
            &full(b"stco", 0, 0, &[&be32s(&[0])]),
            &p.in_stbl,
        ],
    );
    let dinf = bx(
        b"dinf",
        &[&full(
            b"dref",
            0,
            0,
            &[&be32s(&[1]), &full(b"url ", 0, 1, &[])],
        )],
    );
    let minf = bx(b"minf", &[&full(b"vmhd", 0, 1, &[&[0; 8]]), &dinf, &stbl]);
    bx(b"trak", &[&tkhd, &bx(b"mdia", &[&mdhd, &hdlr, &minf])])
}

/// The file: `ftyp`, `moov`, one `moof` with two 3000-tick samples of 10 bytes, `mdat`, `mfra`.
fn file(p: &Parts) -> Vec<u8> {
    let ftyp = bx(b"ftyp", &[b"isom", &be32s(&[0x200]), b"isomiso6mp41"]);
    let mvhd = full(
        b"mvhd",
        0,
        0,
        &[
            &be32s(&[0, 0, 1000, 0, 0x0001_0000]),
            &[1, 0, 0, 0],
            &[0; 8],
            &[0; 36],
            &[0; 24],
            &be32s(&[2]),
        ],
    );
    let mut traks = trak(p, 1);
    for i in 0..p.traks {
        traks.extend_from_slice(&trak(p, 2 + i as u32));
    }
    let trex = full(b"trex", 0, 0, &[&be32s(&[1, 1, 3000, 10, 0])]);
    let moov = bx(
        b"moov",
        &[&mvhd, &traks, &bx(b"mvex", &[&trex]), &p.in_moov],
    );
    let build_moof = |data_offset: u32| {
        let tfhd = full(b"tfhd", 0, 0x02_0000, &[&be32s(&[1])]);
        let tfdt = full(b"tfdt", 1, 0, &[&0u64.to_be_bytes()]);
        let trun = p.trun.clone().unwrap_or_else(|| {
            // data offset, per-sample duration and size, and the first sample's flags.
            full(
                b"trun",
                0,
                0x305,
                &[&be32s(&[2, data_offset, 0x0200_0000, 3000, 10, 3000, 10])],
            )
        });
        bx(
            b"moof",
            &[
                &bx(b"mfhd", &[&be32s(&[0, 1])]),
                &bx(b"traf", &[&tfhd, &tfdt, &trun, &p.in_traf]),
            ],
        )
    };
    let moof_len = build_moof(0).len() as u32;
    let moof = build_moof(moof_len + 8);
    let mdat = bx(b"mdat", &[&[0x55; 20]]);
    let moof_at = (ftyp.len() + moov.len()) as u32;
    let mfra = p.mfra.clone().unwrap_or_else(|| {
        let tfra = full(b"tfra", 0, 0, &[&be32s(&[1, 0, 1, 0, moof_at]), &[1, 1, 1]]);
        let len = (tfra.len() + 8 + 16) as u32;
        bx(b"mfra", &[&tfra, &full(b"mfro", 0, 0, &[&be32s(&[len])])])
    });
    [ftyp, moov, moof, mdat, mfra].concat()
}

/// What probing a crafted file must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The same answer as the valid file: the box is one the probe skips.
    Same,
    /// The fragment cannot be complete: `truncated`, no media.
    Truncated,
    /// A clear error.
    Error,
}

/// The valid file: 2 HEVC samples of 3000 ticks at 90 kHz (66.667 ms), 320x240.
pub fn valid() -> Vec<u8> {
    file(&Parts::default())
}

/// Each crafted file, named, with what its probe must give.
pub fn cases() -> Vec<(&'static str, Expect, Vec<u8>)> {
    let huge = be32s(&[COUNT]);
    // Sample groups. Version 0 of an unknown grouping type has entries of no stated length:
    // mp4-atom 0.17 let the first take the rest of the box and each next one none, so a count of
    // four billion grew a Vec until memory ran out (found by the fuzzer). Then version 1 with
    // a fixed entry length, and with a variable one (a length per entry).
    let sgpd_v0 = full(b"sgpd", 0, 0, &[b"xxxx", &huge, &[1, 2, 3, 4]]);
    let sgpd_fixed = full(b"sgpd", 1, 0, &[b"roll", &be32s(&[2, COUNT]), &[0, 1]]);
    let sgpd_var = full(b"sgpd", 1, 0, &[b"rap ", &be32s(&[0, COUNT, 1]), &[0x80]]);
    let sbgp = full(b"sbgp", 0, 0, &[b"roll", &huge, &be32s(&[1, 1])]);
    // Sample entries nested 150 deep inside the entry, around a sample group (1.3 KB).
    let mut nested = sgpd_fixed.clone();
    for _ in 0..150 {
        nested = bx(b"hvc1", &[&nested]);
    }
    // Containers nested 2000 deep inside a track.
    let mut deep = bx(b"mdhd", &[]);
    for _ in 0..2000 {
        deep = bx(b"mdia", &[&deep]);
    }
    let many_small: Vec<u8> = (0..2000).flat_map(|_| bx(b"free", &[])).collect();
    let with = |f: &dyn Fn(&mut Parts)| {
        let mut p = Parts::default();
        f(&mut p);
        file(&p)
    };
    vec![
        (
            "sgpd-v0-in-entry",
            Expect::Same,
            with(&|p| p.in_entry = sgpd_v0.clone()),
        ),
        (
            "sgpd-in-entry",
            Expect::Same,
            with(&|p| p.in_entry = sgpd_fixed.clone()),
        ),
        (
            "sgpd-variable-in-entry",
            Expect::Same,
            with(&|p| p.in_entry = sgpd_var.clone()),
        ),
        (
            "nested-sample-entries",
            Expect::Same,
            with(&|p| p.in_entry = nested.clone()),
        ),
        (
            "nested-containers",
            Expect::Same,
            with(&|p| p.in_stbl = deep.clone()),
        ),
        (
            "stsd-over-64k",
            Expect::Error,
            with(&|p| p.in_entry = bx(b"free", &[&vec![0; 70_000]])),
        ),
        (
            "sgpd-sbgp-in-stbl",
            Expect::Same,
            with(&|p| p.in_stbl = [sgpd_v0.clone(), sbgp.clone()].concat()),
        ),
        (
            "stts",
            Expect::Same,
            with(&|p| p.in_stbl = full(b"stts", 0, 0, &[&huge])),
        ),
        (
            "ctts",
            Expect::Same,
            with(&|p| p.in_stbl = full(b"ctts", 1, 0, &[&huge])),
        ),
        (
            "stsz",
            Expect::Same,
            with(&|p| p.in_stbl = full(b"stsz", 0, 0, &[&be32s(&[0, COUNT])])),
        ),
        (
            "stz2",
            Expect::Same,
            with(&|p| p.in_stbl = full(b"stz2", 0, 0, &[&be32s(&[4, COUNT])])),
        ),
        (
            "stco",
            Expect::Same,
            with(&|p| p.in_stbl = full(b"stco", 0, 0, &[&huge])),
        ),
        (
            "co64",
            Expect::Same,
            with(&|p| p.in_stbl = full(b"co64", 0, 0, &[&huge])),
        ),
        (
            "stss",
            Expect::Same,
            with(&|p| p.in_stbl = full(b"stss", 0, 0, &[&huge])),
        ),
        (
            "stsc",
            Expect::Same,
            with(&|p| p.in_stbl = full(b"stsc", 0, 0, &[&huge])),
        ),
        (
            "sgpd-sbgp-saiz-in-traf",
            Expect::Same,
            with(&|p| {
                p.in_traf = [
                    sgpd_v0.clone(),
                    sbgp.clone(),
                    full(b"saiz", 0, 0, &[&[0], &huge]),
                ]
                .concat()
            }),
        ),
        (
            "elst-in-moov",
            Expect::Same,
            with(&|p| p.in_moov = full(b"elst", 1, 0, &[&huge])),
        ),
        (
            "stsd-count",
            Expect::Same,
            with(&|p| p.stsd_count = Some(COUNT)),
        ),
        (
            "trun-per-sample",
            Expect::Error,
            with(&|p| p.trun = Some(full(b"trun", 0, 0x301, &[&be32s(&[COUNT, 100, 3000, 10])]))),
        ),
        (
            "trun-no-fields",
            Expect::Truncated,
            with(&|p| p.trun = Some(full(b"trun", 0, 0x001, &[&be32s(&[COUNT, 100])]))),
        ),
        (
            "tfra",
            Expect::Same,
            with(&|p| {
                let tfra = full(b"tfra", 1, 0, &[&be32s(&[1, 0x3F, COUNT]), &[0; 20]]);
                let len = (tfra.len() + 24) as u32;
                p.mfra = Some(bx(
                    b"mfra",
                    &[&tfra, &full(b"mfro", 0, 0, &[&be32s(&[len])])],
                ));
            }),
        ),
        (
            "mfro-size",
            Expect::Same,
            with(&|p| p.mfra = Some(bx(b"mfra", &[&full(b"mfro", 0, 0, &[&huge])]))),
        ),
        (
            "many-children",
            Expect::Error,
            with(&|p| p.in_moov = many_small.clone()),
        ),
        ("too-many-tracks", Expect::Error, with(&|p| p.traks = 16)),
        (
            "huge-box-claim",
            Expect::Error,
            [
                bx(b"ftyp", &[b"isom"]),
                b"\0\0\0\x01moov".to_vec(),
                (1u64 << 40).to_be_bytes().to_vec(),
                vec![0; 64],
            ]
            .concat(),
        ),
    ]
}
