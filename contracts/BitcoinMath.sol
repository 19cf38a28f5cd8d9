// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title BitcoinMath
/// @notice Bitcoin consensus arithmetic the oracle re-does on chain so that consumers trust no
///         off-chain number: compact bits <-> target exactly as Bitcoin Core's
///         `arith_uint256::SetCompact` / `GetCompact`, the retarget rule
///         (`CalculateNextWorkRequired`), block subsidy, and the BME fixed-point sum of
///         DESIGN.md with 512-bit intermediates.
/// @dev    Mirrors oracle/bitcoin/difficulty.py and oracle/index/bme.py line by line; the Python side
///         is the reference the tests compare against.
library BitcoinMath {
    /// Target of bits 0x1d00ffff, the numerator of difficulty.
    uint256 internal constant DIFF1_TARGET = 0xffff << 208;
    uint256 internal constant EPOCH_BLOCKS = 2016;
    uint256 internal constant TARGET_TIMESPAN_S = 14 days;
    uint256 internal constant HALVING_INTERVAL = 210_000;
    uint256 internal constant INITIAL_SUBSIDY_SAT = 5_000_000_000;
    /// 86400 x 10^22: seconds per day, TH (10^12), 1/10^8 satoshi per BTC and 10^18 fixed point.
    uint256 internal constant FIXED_NUMERATOR = 86_400 * 1e22;

    /// Compact bits that Bitcoin Core rejects: negative, overflowing or zero target.
    error InvalidBits(uint32 bits);
    /// `N` is not a positive multiple of 14.
    error InvalidWindow(uint256 nDays);
    /// A 512-bit quotient does not fit in 256 bits.
    error MulDivOverflow();

    /// @notice The target of valid bits; reverts `InvalidBits` where `CheckProofOfWork` would fail.
    /// @dev    SetCompact's value plus the three rejections (negative, overflow, zero), written
    ///         lean because it runs three times in every submit: a zero mantissa means a zero
    ///         target (rejected whatever the flags), and after the overflow checks size <= 34
    ///         so no shift wraps.
    function bitsToTarget(uint32 bits) internal pure returns (uint256 target) {
        unchecked {
            uint256 size = bits >> 24;
            uint256 word = bits & 0x007fffff;
            if (
                word == 0 || bits & 0x00800000 != 0 || size > 34 || (word > 0xff && size > 33)
                    || (word > 0xffff && size > 32)
            ) revert InvalidBits(bits);
            target = size <= 3 ? word >> (8 * (3 - size)) : word << (8 * (size - 3));
            if (target == 0) revert InvalidBits(bits);
        }
    }

    /// @notice Compact encoding of a non-negative value, exactly as `arith_uint256::GetCompact`
    ///         (with fNegative = false). Consensus-critical: the retarget rule compares its
    ///         output with the header's nBits, so it is tested against Bitcoin Core's vectors.
    function encodeCompact(uint256 value) internal pure returns (uint32) {
        if (value == 0) return 0;
        uint256 size = _byteLength(value);
        uint256 compact = size <= 3 ? value << (8 * (3 - size)) : value >> (8 * (size - 3));
        if (compact & 0x00800000 != 0) {
            compact >>= 8;
            size += 1;
        }
        return uint32(compact | (size << 24));
    }

    /// @notice Bitcoin Core's `CalculateNextWorkRequired`: the bits of block 2016e from the
    ///         previous epoch's bits, the time of its first block (2016e - 2016) and the time
    ///         of its last block (2016e - 1), under `powLimit`.
    /// @dev    The timespan is a signed difference in Core (int64); a last time before the
    ///         first clamps to the lower bound like any short span. Stored targets are at most
    ///         powLimit < 2^224 on the networks that retarget, so target x 4,838,400 < 2^247
    ///         cannot overflow (regtest, powLimit ~2^255, never retargets and never calls this).
    function nextWorkRequired(uint32 previousBits, uint256 firstTime, uint256 lastTime, uint256 powLimit)
        internal
        pure
        returns (uint32)
    {
        uint256 timespan = lastTime > firstTime ? lastTime - firstTime : 0;
        if (timespan < TARGET_TIMESPAN_S / 4) timespan = TARGET_TIMESPAN_S / 4;
        if (timespan > TARGET_TIMESPAN_S * 4) timespan = TARGET_TIMESPAN_S * 4;
        uint256 next = bitsToTarget(previousBits) * timespan / TARGET_TIMESPAN_S;
        return encodeCompact(next > powLimit ? powLimit : next);
    }

    /// @notice Total subsidy in satoshis of the 2016 blocks of `epoch`, halving epochs
    ///         block-weighted (oracle.bme.epoch_subsidy_sat).
    function epochSubsidySat(uint256 epoch) internal pure returns (uint256 total) {
        uint256 height = epoch * EPOCH_BLOCKS;
        uint256 end = height + EPOCH_BLOCKS;
        while (height < end) {
            uint256 halvings = height / HALVING_INTERVAL;
            uint256 segmentEnd = _min(end, (halvings + 1) * HALVING_INTERVAL);
            if (halvings < 64) total += (segmentEnd - height) * (INITIAL_SUBSIDY_SAT >> halvings);
            height = segmentEnd;
        }
    }

    /// @notice T = N / 14, reverting unless N is a positive multiple of 14.
    function epochsForDays(uint256 nDays) internal pure returns (uint256) {
        if (nDays == 0 || nDays % 14 != 0) revert InvalidWindow(nDays);
        return nDays / 14;
    }

    /// @notice Add S_epoch x target to the 512-bit accumulator (hi, lo).
    function accumulate(uint256 hi, uint256 lo, uint256 epoch, uint256 target)
        internal
        pure
        returns (uint256, uint256)
    {
        (uint256 termHi, uint256 termLo) = mul512(epochSubsidySat(epoch), target);
        unchecked {
            uint256 newLo = lo + termLo;
            uint256 carry = newLo < lo ? 1 : 0;
            lo = newLo;
            termHi += carry; // termHi < 2^45: cannot overflow
        }
        return (hi + termHi, lo);
    }

    /// @notice floor( sum x 86400 x 10^22 / (T x 2016 x 2^32 x DIFF1_TARGET) ), the BME fixed
    ///         point of DESIGN.md, for a 512-bit sum = hi x 2^256 + lo.
    /// @dev    The denominator is T x 2016 x 0xffff x 2^240 (DIFF1_TARGET = 0xffff x 2^208), and
    ///         floor(floor(x / a) / b) = floor(x / (a b)) for positive integers, so the product
    ///         (up to ~2^400) is formed in 512 bits, shifted right by 240, then divided once.
    function bmeFixed(uint256 hi, uint256 lo, uint256 epochs) internal pure returns (uint256) {
        (uint256 p1, uint256 p0) = mul512(lo, FIXED_NUMERATOR);
        uint256 high = hi * FIXED_NUMERATOR + p1; // checked: reverts rather than wraps
        if (high >> 240 != 0) revert MulDivOverflow();
        uint256 shifted = (high << 16) | (p0 >> 240);
        return shifted / (epochs * EPOCH_BLOCKS * 0xffff);
    }

    /// @notice The full 512-bit product a x b = hi x 2^256 + lo.
    function mul512(uint256 a, uint256 b) internal pure returns (uint256 hi, uint256 lo) {
        assembly ("memory-safe") {
            let mm := mulmod(a, b, not(0))
            lo := mul(a, b)
            hi := sub(sub(mm, lo), lt(mm, lo))
        }
    }

    /// @notice floor(a x b / denominator) with a 512-bit intermediate (Remco Bloemen's mulDiv);
    ///         reverts `MulDivOverflow` when the result does not fit in 256 bits.
    function mulDiv(uint256 a, uint256 b, uint256 denominator) internal pure returns (uint256 result) {
        (uint256 prod1, uint256 prod0) = mul512(a, b);
        if (prod1 == 0) return prod0 / denominator;
        if (denominator <= prod1) revert MulDivOverflow();
        unchecked {
            uint256 remainder;
            assembly ("memory-safe") {
                remainder := mulmod(a, b, denominator)
                prod1 := sub(prod1, gt(remainder, prod0))
                prod0 := sub(prod0, remainder)
            }
            uint256 twos = denominator & (0 - denominator);
            assembly ("memory-safe") {
                denominator := div(denominator, twos)
                prod0 := div(prod0, twos)
                twos := add(div(sub(0, twos), twos), 1)
            }
            prod0 |= prod1 * twos;
            uint256 inverse = (3 * denominator) ^ 2;
            inverse *= 2 - denominator * inverse;
            inverse *= 2 - denominator * inverse;
            inverse *= 2 - denominator * inverse;
            inverse *= 2 - denominator * inverse;
            inverse *= 2 - denominator * inverse;
            inverse *= 2 - denominator * inverse;
            result = prod0 * inverse;
        }
    }

    /// @notice Reverse the byte order of a 256-bit word (sha256d output <-> hash number).
    function reverseBytes32(uint256 v) internal pure returns (uint256) {
        v = ((v & 0xff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00) >> 8)
            | ((v & 0x00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff) << 8);
        v = ((v & 0xffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000) >> 16)
            | ((v & 0x0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff) << 16);
        v = ((v & 0xffffffff00000000ffffffff00000000ffffffff00000000ffffffff00000000) >> 32)
            | ((v & 0x00000000ffffffff00000000ffffffff00000000ffffffff00000000ffffffff) << 32);
        v = ((v & 0xffffffffffffffff0000000000000000ffffffffffffffff0000000000000000) >> 64)
            | ((v & 0x0000000000000000ffffffffffffffff0000000000000000ffffffffffffffff) << 64);
        return (v >> 128) | (v << 128);
    }

    /// @notice A little-endian uint32 (as read big-endian from calldata) to its value.
    function swap32(uint256 v) internal pure returns (uint32) {
        return uint32(((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >> 8) & 0xff00) | ((v >> 24) & 0xff));
    }

    /// Number of significant bytes of a non-zero value (Core's (bits() + 7) / 8), by binary search.
    function _byteLength(uint256 v) private pure returns (uint256) {
        uint256 r; // 8 x (index of the most significant non-zero byte)
        assembly ("memory-safe") {
            r := shl(7, lt(0xffffffffffffffffffffffffffffffff, v))
            r := or(r, shl(6, lt(0xffffffffffffffff, shr(r, v))))
            r := or(r, shl(5, lt(0xffffffff, shr(r, v))))
            r := or(r, shl(4, lt(0xffff, shr(r, v))))
            r := or(r, shl(3, lt(0xff, shr(r, v))))
        }
        return r / 8 + 1;
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
