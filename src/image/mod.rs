//! Images: OCI layer tarballs unpacked into overlay-ready layer directories,
//! bundles made from OCI image layouts, and `commit` of a container's
//! writable layer back into a layer or an image.

pub mod bundle;
pub mod commit;
pub mod layout;
pub mod unpack;
