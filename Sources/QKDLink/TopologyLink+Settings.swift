import QKDKeyPool
import QKDPhysics
import QKDPostProcessing
import QKDTopology

extension TopologyLink {
    /// The link's distillation settings (the same at both ends): its decoy-state source and
    /// the error-correction efficiency its pre-shared and distilled keys are sized by.
    public var distillation: DistillerConfiguration {
        let p = physics
        let source = SourceSettings(signal: p.signalIntensity, decoy: p.decoyIntensity, signalProbability: p.signalProbability,
                                    decoyProbability: p.decoyProbability, vacuumProbability: p.vacuumProbability,
                                    decoyStates: p.decoyStates)
        return DistillerConfiguration(source: source, ecEfficiency: p.ecEfficiency)
    }

    /// The key pool of either end of the link: its capacity, the keys kept back for
    /// authentication, and how long a reservation holds.
    public var poolConfiguration: KeyPool.Configuration {
        KeyPool.Configuration(maxKeyCount: physics.maxKeyCount, authenticationReserve: 64)
    }
}
