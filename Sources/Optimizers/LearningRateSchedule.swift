import Tensors

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A learning rate as a function of the optimizer step.
///
/// `step` counts the optimizer steps already taken: step 0 is the first update, as in transformers'
/// `LambdaLR` schedules (so a warm-up makes the very first update use learning rate 0, exactly as there).
public protocol LearningRateSchedule {
    func learningRate(atStep step: Int) -> Float
}

extension LearningRateSchedule {
    /// Sets `optimizer.learningRate` for the update that follows `step` completed steps.
    public func apply(to optimizer: Optimizer, step: Int) {
        optimizer.learningRate = learningRate(atStep: step)
    }
}

private func checkLearningRate(_ learningRate: Float) throws {
    guard learningRate.isFinite && learningRate >= 0 else {
        throw AlbertMoEError.invalidValue(field: "learningRate", reason: "\(learningRate) must be finite and >= 0")
    }
}

private func checkWarmup(_ warmupSteps: Int) throws {
    guard warmupSteps >= 0 else {
        throw AlbertMoEError.invalidValue(field: "warmupSteps", reason: "\(warmupSteps) must be >= 0")
    }
}

/// Checks the settings shared by the decaying schedules.
private func checkDecay(learningRate: Float, warmupSteps: Int, totalSteps: Int, minLR: Float?) throws {
    try checkLearningRate(learningRate)
    try checkWarmup(warmupSteps)
    guard totalSteps >= 1 else {
        throw AlbertMoEError.invalidValue(field: "totalSteps", reason: "\(totalSteps) must be >= 1")
    }
    guard warmupSteps <= totalSteps else {
        throw AlbertMoEError.invalidValue(field: "warmupSteps",
                                          reason: "\(warmupSteps) must not exceed totalSteps (\(totalSteps))")
    }
    if let minLR {
        guard minLR.isFinite && minLR >= 0 && minLR <= learningRate else {
            throw AlbertMoEError.invalidValue(field: "minLR",
                                              reason: "\(minLR) must be finite, >= 0 and <= learningRate (\(learningRate))")
        }
    }
}

/// The warm-up factor step / warmupSteps (transformers: step / max(1, warmup)), or nil after warm-up.
@inline(__always)
private func warmupFactor(_ step: Int, _ warmupSteps: Int) -> Double? {
    precondition(step >= 0, "LearningRateSchedule: negative step \(step)")
    return step < warmupSteps ? Double(step) / Double(max(1, warmupSteps)) : nil
}

/// A constant learning rate, optionally after a linear warm-up from 0
/// (transformers' `get_constant_schedule` / `get_constant_schedule_with_warmup`).
public struct ConstantSchedule: LearningRateSchedule {
    public let learningRate: Float
    public let warmupSteps: Int

    public init(learningRate: Float, warmupSteps: Int = 0) throws {
        try checkLearningRate(learningRate)
        try checkWarmup(warmupSteps)
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
    }

    public func learningRate(atStep step: Int) -> Float {
        Float(Double(learningRate) * (warmupFactor(step, warmupSteps) ?? 1))
    }
}

/// Linear warm-up from 0 to `learningRate` over `warmupSteps`, then linear decay to 0 at `totalSteps` and 0
/// after (transformers' `get_linear_schedule_with_warmup`). With `minLR`, the decay ends at `minLR` instead
/// and stays there: lr = minLR + (learningRate - minLR) * f, f the decay factor.
public struct LinearWarmupSchedule: LearningRateSchedule {
    public let learningRate: Float
    public let warmupSteps: Int
    public let totalSteps: Int
    public let minLR: Float?

    public init(learningRate: Float, warmupSteps: Int, totalSteps: Int, minLR: Float? = nil) throws {
        try checkDecay(learningRate: learningRate, warmupSteps: warmupSteps, totalSteps: totalSteps, minLR: minLR)
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minLR = minLR
    }

    public func learningRate(atStep step: Int) -> Float {
        if let w = warmupFactor(step, warmupSteps) { return Float(Double(learningRate) * w) }
        let f = max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
        return decayed(learningRate, minLR, f)
    }
}

/// Linear warm-up, then half a cosine from `learningRate` down to 0 (or `minLR`) at `totalSteps`
/// (transformers' `get_cosine_schedule_with_warmup` with 0.5 cycles; with `minLR` as
/// `get_cosine_with_min_lr_schedule_with_warmup`). Past `totalSteps` it stays at the final value
/// (transformers' cosine would rise again there).
public struct CosineWarmupSchedule: LearningRateSchedule {
    public let learningRate: Float
    public let warmupSteps: Int
    public let totalSteps: Int
    public let minLR: Float?

    public init(learningRate: Float, warmupSteps: Int, totalSteps: Int, minLR: Float? = nil) throws {
        try checkDecay(learningRate: learningRate, warmupSteps: warmupSteps, totalSteps: totalSteps, minLR: minLR)
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minLR = minLR
    }

    public func learningRate(atStep step: Int) -> Float {
        if let w = warmupFactor(step, warmupSteps) { return Float(Double(learningRate) * w) }
        let progress = min(1, Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps)))
        let f = max(0, 0.5 * (1 + cos(Double.pi * 0.5 * 2 * progress)))
        return decayed(learningRate, minLR, f)
    }
}

private func decayed(_ learningRate: Float, _ minLR: Float?, _ factor: Double) -> Float {
    guard let minLR else { return Float(Double(learningRate) * factor) }
    return Float(Double(minLR) + (Double(learningRate) - Double(minLR)) * factor)
}

/// The schedules by name, for command lines.
public enum LearningRateScheduleKind: String, CaseIterable {
    case constant, linear, cosine

    /// Parses a name ("constant", "linear", "cosine"; case-insensitive), throwing an error for field
    /// "schedule" that lists the valid names.
    public init(parsing name: String) throws {
        guard let kind = LearningRateScheduleKind(rawValue: name.lowercased()) else {
            throw AlbertMoEError.invalidValue(
                field: "schedule",
                reason: "unknown schedule \"\(name)\" (expected one of: \(Self.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        self = kind
    }

    /// The schedule of this kind; `totalSteps` and `minLR` are ignored (not checked) by `constant`.
    public func make(learningRate: Float, warmupSteps: Int, totalSteps: Int, minLR: Float? = nil) throws
        -> any LearningRateSchedule
    {
        switch self {
        case .constant:
            return try ConstantSchedule(learningRate: learningRate, warmupSteps: warmupSteps)
        case .linear:
            return try LinearWarmupSchedule(learningRate: learningRate, warmupSteps: warmupSteps,
                                            totalSteps: totalSteps, minLR: minLR)
        case .cosine:
            return try CosineWarmupSchedule(learningRate: learningRate, warmupSteps: warmupSteps,
                                            totalSteps: totalSteps, minLR: minLR)
        }
    }
}

/// Drives an optimizer's learning rate from a schedule, like torch's `LambdaLR`: creating it sets the
/// learning rate for step `startStep`; call `step()` after each `optimizer.step()`.
public final class LearningRateScheduler {
    public let schedule: any LearningRateSchedule
    public let optimizer: Optimizer
    /// The number of optimizer steps taken so far (the step whose learning rate is set now).
    public private(set) var currentStep: Int

    /// `startStep` resumes a run: pass the number of optimizer steps already taken.
    public init(_ optimizer: Optimizer, schedule: any LearningRateSchedule, startStep: Int = 0) {
        precondition(startStep >= 0, "LearningRateScheduler: negative startStep \(startStep)")
        self.optimizer = optimizer
        self.schedule = schedule
        currentStep = startStep
        schedule.apply(to: optimizer, step: startStep)
    }

    /// Advances one step and sets the optimizer's learning rate for it.
    public func step() {
        currentStep += 1
        schedule.apply(to: optimizer, step: currentStep)
    }

    /// The learning rate currently set.
    public var learningRate: Float { optimizer.learningRate }
}
