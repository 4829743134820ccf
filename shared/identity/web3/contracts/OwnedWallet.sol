// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title OwnedWallet: the smallest ERC-1271 contract wallet, for tests and local development.
/// @notice A signature is valid for this wallet when it is the owner's ECDSA signature of the
///         hash (for SIWE: the EIP-191 personal_sign hash of the message).
contract OwnedWallet {
    bytes4 internal constant MAGIC_VALUE = 0x1626ba7e; // bytes4(keccak256("isValidSignature(bytes32,bytes)"))
    bytes4 internal constant INVALID = 0xffffffff;
    // secp256k1n / 2: higher s values are malleable duplicates (EIP-2).
    uint256 internal constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    address public owner;

    event OwnerChanged(address indexed previousOwner, address indexed newOwner);

    constructor(address initialOwner) {
        require(initialOwner != address(0), "owner is zero");
        owner = initialOwner;
    }

    function setOwner(address newOwner) external {
        require(msg.sender == owner, "not owner");
        require(newOwner != address(0), "owner is zero");
        emit OwnerChanged(owner, newOwner);
        owner = newOwner;
    }

    /// @notice ERC-1271: 0x1626ba7e when the owner signed `hash`, else 0xffffffff.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) {
            return INVALID;
        }
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) {
            v += 27;
        }
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) {
            return INVALID;
        }
        address signer = ecrecover(hash, v, r, s);
        if (signer != address(0) && signer == owner) {
            return MAGIC_VALUE;
        }
        return INVALID;
    }
}
