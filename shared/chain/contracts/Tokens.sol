// SPDX-License-Identifier: MIT
// Payloom's local test tokens: thin subclasses of OpenZeppelin's ERC20, no token logic of our own.
// The constructor mints the whole initial supply to the deployer; `mint` is OpenZeppelin's
// `_mint` behind `Ownable` so tests and the local stack can fund payers.
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

abstract contract PayloomTestToken is ERC20, Ownable {
    constructor(string memory name_, string memory symbol_, uint256 initialSupply)
        ERC20(name_, symbol_) Ownable(msg.sender)
    {
        _mint(msg.sender, initialSupply);
    }

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}

/// USD Coin stand-in: 6 decimals like Circle's USDC; 1,000,000,000 USDC to the deployer.
contract USDC is PayloomTestToken {
    constructor() PayloomTestToken("USD Coin (Payloom test)", "USDC", 1_000_000_000 * 10 ** 6) {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }
}

/// Mezo USD stand-in: 18 decimals; 1,000,000,000 MUSD to the deployer.
contract MUSD is PayloomTestToken {
    constructor() PayloomTestToken("Mezo USD (Payloom test)", "MUSD", 1_000_000_000 * 10 ** 18) {}

    function decimals() public pure override returns (uint8) {
        return 18;
    }
}

/// PeerPower token: 18 decimals; 1,000,000,000 PPT to the deployer.
contract PPT is PayloomTestToken {
    constructor() PayloomTestToken("PeerPower Token (Payloom test)", "PPT", 1_000_000_000 * 10 ** 18) {}

    function decimals() public pure override returns (uint8) {
        return 18;
    }
}
