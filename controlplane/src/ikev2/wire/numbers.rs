//! IANA "IKEv2 Parameters" numbers used on the wire (RFC 7296 §3).

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $var:ident = $val:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value this implementation does not know.
            Unknown($repr),
        }
        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                match v {
                    $($val => $name::$var,)*
                    other => $name::Unknown(other),
                }
            }
        }
        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                match v {
                    $($name::$var => $val,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

wire_enum! {
    /// Payload types (RFC 7296 §3.2); 0 ends the chain.
    PayloadType: u8 {
        None = 0,
        Sa = 33, Ke = 34, IdI = 35, IdR = 36, Cert = 37, CertReq = 38, Auth = 39,
        Nonce = 40, Notify = 41, Delete = 42, Vendor = 43, TsI = 44, TsR = 45,
        Sk = 46, Cp = 47, Eap = 48, Skf = 53,
    }
}

wire_enum! {
    /// Exchange types (RFC 7296 §3.1).
    ExchangeType: u8 {
        IkeSaInit = 34, IkeAuth = 35, CreateChildSa = 36, Informational = 37,
    }
}

wire_enum! {
    /// Protocol IDs in proposals, notifies and deletes (RFC 7296 §3.3.1).
    ProtocolId: u8 {
        None = 0, Ike = 1, Ah = 2, Esp = 3,
    }
}

/// Notify message type (RFC 7296 §3.10.1). A newtype rather than an enum
/// because most of the 16-bit space is registered and unknown status types
/// must be carried through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotifyType(pub u16);

macro_rules! notify_types {
    ($($name:ident = $val:expr),* $(,)?) => {
        impl NotifyType {
            $(pub const $name: NotifyType = NotifyType($val);)*
            /// The IANA name, or `None` for a value not listed here.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

notify_types! {
    UNSUPPORTED_CRITICAL_PAYLOAD = 1,
    INVALID_IKE_SPI = 4,
    INVALID_MAJOR_VERSION = 5,
    INVALID_SYNTAX = 7,
    INVALID_MESSAGE_ID = 9,
    INVALID_SPI = 11,
    NO_PROPOSAL_CHOSEN = 14,
    INVALID_KE_PAYLOAD = 17,
    AUTHENTICATION_FAILED = 24,
    SINGLE_PAIR_REQUIRED = 34,
    NO_ADDITIONAL_SAS = 35,
    INTERNAL_ADDRESS_FAILURE = 36,
    FAILED_CP_REQUIRED = 37,
    TS_UNACCEPTABLE = 38,
    INVALID_SELECTORS = 39,
    TEMPORARY_FAILURE = 43,
    CHILD_SA_NOT_FOUND = 44,
    INITIAL_CONTACT = 16384,
    SET_WINDOW_SIZE = 16385,
    ADDITIONAL_TS_POSSIBLE = 16386,
    IPCOMP_SUPPORTED = 16387,
    NAT_DETECTION_SOURCE_IP = 16388,
    NAT_DETECTION_DESTINATION_IP = 16389,
    COOKIE = 16390,
    USE_TRANSPORT_MODE = 16391,
    REKEY_SA = 16393,
    ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
    NON_FIRST_FRAGMENTS_ALSO = 16395,
    MOBIKE_SUPPORTED = 16396,
    IKEV2_FRAGMENTATION_SUPPORTED = 16430,
    SIGNATURE_HASH_ALGORITHMS = 16431,
}

impl NotifyType {
    /// Types below 16384 report errors (RFC 7296 §3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

impl std::fmt::Display for NotifyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "notify type {}", self.0),
        }
    }
}
