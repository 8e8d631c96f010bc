import XCTest
import Optimizers
import Tensors

final class LearningRateScheduleTests: XCTestCase {
    func testMatchesTransformersFormulas() throws {
        for c in OptimizerFixtures.shared.schedules {
            let kind = try LearningRateScheduleKind(parsing: c.kind)
            let schedule = try kind.make(learningRate: Float(c.lr), warmupSteps: c.warmup, totalSteps: c.total,
                                         minLR: c.min_lr.map { Float($0) })
            for (s, expected) in zip(c.steps, c.values) {
                let got = schedule.learningRate(atStep: s)
                XCTAssertEqual(Double(got), expected, accuracy: 1e-6 * abs(expected) + 1e-12,
                               "\(c.kind) warmup \(c.warmup) total \(c.total) minLR \(String(describing: c.min_lr)) step \(s)")
            }
        }
    }

    func testShapes() throws {
        let linear = try LinearWarmupSchedule(learningRate: 1, warmupSteps: 4, totalSteps: 12)
        XCTAssertEqual((0...13).map { linear.learningRate(atStep: $0) },
                       [0, 0.25, 0.5, 0.75, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0, 0])
        let floored = try LinearWarmupSchedule(learningRate: 1, warmupSteps: 0, totalSteps: 2, minLR: 0.5)
        XCTAssertEqual((0...3).map { floored.learningRate(atStep: $0) }, [1, 0.75, 0.5, 0.5])
        let cosine = try CosineWarmupSchedule(learningRate: 2, warmupSteps: 2, totalSteps: 6)
        XCTAssertEqual(cosine.learningRate(atStep: 1), 1)
        XCTAssertEqual(cosine.learningRate(atStep: 2), 2)
        XCTAssertEqual(cosine.learningRate(atStep: 4), 1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(atStep: 6), 0, accuracy: 1e-7)
        XCTAssertEqual(cosine.learningRate(atStep: 9), 0, accuracy: 1e-7, "held at the end")
        let constant = try ConstantSchedule(learningRate: 3e-4)
        XCTAssertEqual(constant.learningRate(atStep: 0), 3e-4)
        XCTAssertEqual(constant.learningRate(atStep: 1_000_000), 3e-4)
    }

    func testRejectsNonsenseNamingTheField() {
        func field(_ body: () throws -> Any) -> String? {
            do { _ = try body(); return nil } catch { return (error as? AlbertMoEError)?.field }
        }
        XCTAssertEqual(field { try LinearWarmupSchedule(learningRate: 1, warmupSteps: -1, totalSteps: 10) },
                       "warmupSteps")
        XCTAssertEqual(field { try LinearWarmupSchedule(learningRate: 1, warmupSteps: 0, totalSteps: 0) }, "totalSteps")
        XCTAssertEqual(field { try CosineWarmupSchedule(learningRate: 1, warmupSteps: 11, totalSteps: 10) },
                       "warmupSteps")
        XCTAssertEqual(field { try CosineWarmupSchedule(learningRate: -1, warmupSteps: 0, totalSteps: 10) },
                       "learningRate")
        XCTAssertEqual(field { try CosineWarmupSchedule(learningRate: .nan, warmupSteps: 0, totalSteps: 10) },
                       "learningRate")
        XCTAssertEqual(field { try LinearWarmupSchedule(learningRate: 1e-3, warmupSteps: 0, totalSteps: 10, minLR: 1e-2) },
                       "minLR")
        XCTAssertEqual(field { try ConstantSchedule(learningRate: 1, warmupSteps: -3) }, "warmupSteps")
        XCTAssertEqual(field { try LearningRateScheduleKind(parsing: "exponential") }, "schedule")
        XCTAssertEqual(try? LearningRateScheduleKind(parsing: "Cosine"), .cosine)
        let message = "\(AlbertMoEError.invalidValue(field: "totalSteps", reason: "0 must be >= 1"))"
        XCTAssertTrue(message.contains("totalSteps"))
    }

    func testSchedulerDrivesTheOptimizer() throws {
        let p = Tensor([1], requiresGrad: true)
        let optimizer = SGD([p], learningRate: 123)
        let schedule = try LinearWarmupSchedule(learningRate: 0.1, warmupSteps: 2, totalSteps: 4)
        let scheduler = LearningRateScheduler(optimizer, schedule: schedule)
        XCTAssertEqual(optimizer.learningRate, 0, "step 0 of a warm-up, as transformers")
        var seen: [Float] = []
        for _ in 0..<5 {
            seen.append(optimizer.learningRate)
            p.grad = Tensor([1])
            optimizer.step()
            scheduler.step()
        }
        XCTAssertEqual(seen, [0, 0.05, 0.1, 0.05, 0])
        XCTAssertEqual(scheduler.currentStep, 5)
        let resumed = LearningRateScheduler(optimizer, schedule: schedule, startStep: 3)
        XCTAssertEqual(resumed.learningRate, 0.05)
        schedule.apply(to: optimizer, step: 1)
        XCTAssertEqual(optimizer.learningRate, 0.05)
    }
}
