// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/*
 * Minimal ERC-721 ticket contract for the blockchain handler tests.
 * Minting and burning are restricted to one minter account (the node-managed
 * account the handler sends from); everything else is plain ERC-721.
 * Revert reasons are strings (Error(string)) so the handler can report them.
 */
interface IERC721Receiver {
    function onERC721Received(address operator, address from, uint256 tokenId,
                              bytes calldata data) external returns (bytes4);
}

contract TicketNFT {
    string public name;
    string public symbol;
    address public minter;

    mapping(uint256 => address) private _owners;
    mapping(address => uint256) private _balances;
    mapping(uint256 => address) private _tokenApprovals;
    mapping(address => mapping(address => bool)) private _operatorApprovals;

    event Transfer(address indexed from, address indexed to,
                   uint256 indexed tokenId);
    event Approval(address indexed owner, address indexed approved,
                   uint256 indexed tokenId);
    event ApprovalForAll(address indexed owner, address indexed operator,
                         bool approved);

    constructor(string memory name_, string memory symbol_, address minter_) {
        name = name_;
        symbol = symbol_;
        minter = minter_;
    }

    modifier onlyMinter() {
        require(msg.sender == minter, "TicketNFT: caller is not the minter");
        _;
    }

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0x01ffc9a7 || id == 0x80ac58cd;
    }

    function balanceOf(address owner) external view returns (uint256) {
        require(owner != address(0), "TicketNFT: zero address");
        return _balances[owner];
    }

    function ownerOf(uint256 tokenId) public view returns (address) {
        address owner = _owners[tokenId];
        require(owner != address(0), "TicketNFT: invalid token ID");
        return owner;
    }

    function mint(address to, uint256 tokenId) external onlyMinter {
        require(to != address(0), "TicketNFT: mint to the zero address");
        require(_owners[tokenId] == address(0),
                "TicketNFT: token already minted");
        _balances[to] += 1;
        _owners[tokenId] = to;
        emit Transfer(address(0), to, tokenId);
    }

    function burn(uint256 tokenId) external onlyMinter {
        address owner = ownerOf(tokenId);
        delete _tokenApprovals[tokenId];
        _balances[owner] -= 1;
        delete _owners[tokenId];
        emit Transfer(owner, address(0), tokenId);
    }

    function approve(address to, uint256 tokenId) external {
        address owner = ownerOf(tokenId);
        require(msg.sender == owner || _operatorApprovals[owner][msg.sender],
                "TicketNFT: not owner nor approved for all");
        _tokenApprovals[tokenId] = to;
        emit Approval(owner, to, tokenId);
    }

    function getApproved(uint256 tokenId) external view returns (address) {
        ownerOf(tokenId);
        return _tokenApprovals[tokenId];
    }

    function setApprovalForAll(address operator, bool approved) external {
        _operatorApprovals[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function isApprovedForAll(address owner, address operator)
        external view returns (bool)
    {
        return _operatorApprovals[owner][operator];
    }

    function transferFrom(address from, address to, uint256 tokenId) public {
        address owner = ownerOf(tokenId);
        require(owner == from, "TicketNFT: transfer from incorrect owner");
        require(to != address(0), "TicketNFT: transfer to the zero address");
        require(msg.sender == owner || _tokenApprovals[tokenId] == msg.sender ||
                    _operatorApprovals[owner][msg.sender],
                "TicketNFT: caller is not token owner or approved");
        delete _tokenApprovals[tokenId];
        _balances[from] -= 1;
        _balances[to] += 1;
        _owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }

    function safeTransferFrom(address from, address to, uint256 tokenId,
                              bytes memory data) public {
        transferFrom(from, to, tokenId);
        if (to.code.length > 0) {
            require(IERC721Receiver(to).onERC721Received(msg.sender, from,
                                                         tokenId, data) ==
                        IERC721Receiver.onERC721Received.selector,
                    "TicketNFT: transfer to non ERC721Receiver implementer");
        }
    }

    function safeTransferFrom(address from, address to, uint256 tokenId)
        external
    {
        safeTransferFrom(from, to, tokenId, "");
    }
}
