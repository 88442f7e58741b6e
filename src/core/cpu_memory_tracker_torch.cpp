// CpuMemoryTracker: a c10::Allocator that forwards to the allocator it replaces and counts
// bytes.
#include "gopd/core/cpu_memory_tracker.h"

#include <atomic>
#include <cstring>
#include <stdexcept>

#include <c10/core/Allocator.h>

namespace gopd::core {
namespace {

constexpr uint8_t kTrackerPriority = 100;

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t bytes) override {
    auto* block = new Block{inner_->allocate(bytes), bytes, this};
    const int64_t now = current_.fetch_add(int64_t(bytes)) + int64_t(bytes);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return c10::DataPtr(block->inner.get(), block, &release, block->inner.device());
  }

  void copy_data(void* destination, const void* source, std::size_t count) const override {
    std::memcpy(destination, source, count);
  }

  int64_t current() const { return current_.load(); }
  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(current_.load()); }
  c10::Allocator* inner() const { return inner_; }

 private:
  struct Block {
    c10::DataPtr inner;
    size_t bytes;
    const CountingAllocator* owner;
  };

  static void release(void* context) {
    auto* block = static_cast<Block*>(context);
    block->owner->current_.fetch_sub(int64_t(block->bytes));
    delete block;  // frees the memory through the inner allocator's deleter
  }

  c10::Allocator* inner_;
  mutable std::atomic<int64_t> current_{0};
  mutable std::atomic<int64_t> peak_{0};
};

std::atomic<bool> tracker_active{false};

}  // namespace

struct CpuMemoryTracker::State {
  // Never destroyed: tensors allocated while tracking may outlive the tracker and still call
  // back into it when freed.
  CountingAllocator* allocator = nullptr;
};

CpuMemoryTracker::CpuMemoryTracker() : state_(std::make_unique<State>()) {
  if (tracker_active.exchange(true)) {
    throw std::logic_error("CpuMemoryTracker: only one tracker may be active at a time");
  }
  state_->allocator = new CountingAllocator(c10::GetAllocator(c10::DeviceType::CPU));
  c10::SetAllocator(c10::DeviceType::CPU, state_->allocator, kTrackerPriority);
}

CpuMemoryTracker::~CpuMemoryTracker() {
  c10::SetAllocator(c10::DeviceType::CPU, state_->allocator->inner(), kTrackerPriority);
  tracker_active.store(false);
}

int64_t CpuMemoryTracker::current_bytes() const { return state_->allocator->current(); }
int64_t CpuMemoryTracker::peak_bytes() const { return state_->allocator->peak(); }
void CpuMemoryTracker::reset_peak() { state_->allocator->reset_peak(); }

}  // namespace gopd::core
