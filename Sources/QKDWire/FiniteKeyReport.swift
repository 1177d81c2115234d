/// The counts behind one block's key length and the length itself, as `qkdctl sim link --json`
/// and every live block report show them (key `finite_key`; field names fixed: other tools
/// read them). Per-intensity arrays are in the order [μ1, μ2, μ3]. No key bit appears here.
public struct FiniteKeyReport: Codable, Equatable, Sendable {
    /// "lim2014" or "asymptotic".
    public var bound: String
    /// nil for the asymptotic bound (it has no ε).
    public var epsSec: Double?
    public var epsCor: Double?
    public var intensities: [Double]
    public var probabilities: [Double]
    public var pX: Double
    /// Key-basis (X) detections, test-basis (Z) detections and Z errors, per intensity.
    public var nX: [UInt64]
    public var nZ: [UInt64]
    public var mZ: [UInt64]
    /// λ_EC: the bits error correction revealed (Cascade's parities, and the verification
    /// hash's bits beyond the log2(2/ε_cor) that the bound already pays).
    public var leakECBits: UInt64
    public var sX0: Double
    public var sX1: Double
    public var phiX: Double
    /// ℓ (0 when the bound allows none).
    public var keyBits: Int

    public init(bound: String, epsSec: Double?, epsCor: Double?, intensities: [Double], probabilities: [Double], pX: Double,
                nX: [UInt64], nZ: [UInt64], mZ: [UInt64], leakECBits: UInt64, sX0: Double, sX1: Double, phiX: Double, keyBits: Int) {
        self.bound = bound
        self.epsSec = epsSec
        self.epsCor = epsCor
        self.intensities = intensities
        self.probabilities = probabilities
        self.pX = pX
        self.nX = nX
        self.nZ = nZ
        self.mZ = mZ
        self.leakECBits = leakECBits
        self.sX0 = sX0
        self.sX1 = sX1
        self.phiX = phiX
        self.keyBits = keyBits
    }

    enum CodingKeys: String, CodingKey {
        case bound, intensities, probabilities
        case epsSec = "eps_sec", epsCor = "eps_cor", pX = "p_x", nX = "n_x", nZ = "n_z", mZ = "m_z"
        case leakECBits = "leak_ec_bits", sX0 = "s_x0", sX1 = "s_x1", phiX = "phi_x", keyBits = "key_bits"
    }
}
