import QKDKeyPool
import QKDPhysics
import QKDPostProcessing
import QKDTopology

extension TopologyLink {
    /// The link's distillation settings (the same at both ends): its decoy-state source with
    /// its key-basis probability, the error-correction efficiency, and the key-length bound
    /// (`finite_key`, `eps_sec`, `eps_cor`; GLLP's asymptotic formula without decoys).
    public var distillation: DistillerConfiguration {
        let p = physics
        let source = SourceSettings(signal: p.signalIntensity, decoy: p.decoyIntensity, signalProbability: p.signalProbability,
                                    decoyProbability: p.decoyProbability, vacuumProbability: p.vacuumProbability,
                                    decoyStates: p.decoyStates, xProbability: p.xBasisProbability)
        var configuration = DistillerConfiguration(source: source, ecEfficiency: p.ecEfficiency)
        configuration.preSharedKeys = LinkBootstrap.keyCount(freeSpace: isFreeSpace)
        let parameters = Lim2014.Parameters(intensities: source.intensities, probabilities: source.probabilities, epsSec: p.epsSec,
                                            epsCor: p.epsCor, finiteSize: p.finiteKey == .lim2014)
        if p.decoyStates { configuration.bound = p.finiteKey == .lim2014 ? .lim2014(parameters) : .asymptotic(parameters) }
        return configuration
    }

    /// The key pool of either end of the link: its capacity, the keys kept back for
    /// authentication, and how long a reservation holds.
    public var poolConfiguration: KeyPool.Configuration {
        KeyPool.Configuration(maxKeyCount: physics.maxKeyCount, authenticationReserve: 64)
    }
}
